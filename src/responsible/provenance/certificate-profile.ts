import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  type X509Certificate,
} from "@peculiar/x509";

/** id-kp-documentSigning (RFC 9336), the extended key usage C2PA prefers for claim signers. */
export const DOCUMENT_SIGNING_EKU = "1.3.6.1.5.5.7.3.36";
const ANY_EKU = "2.5.29.37.0";

/**
 * Why `cert` cannot sign C2PA manifests, one plain sentence per problem; empty when it can. These are the
 * rules of the specification's certificate profile that validators enforce (they answer
 * `signingCredential.invalid`), checked here with reasons so a user's key is refused when it is configured
 * rather than producing images that every reader rejects.
 */
export function signingCertificateProblems(cert: X509Certificate, at: Date = new Date()): string[] {
  const problems: string[] = [];
  if (cert.subject === cert.issuer) {
    problems.push(
      "it is self-signed; C2PA refuses self-signed signing certificates: issue it from a CA (your own is fine) and list that CA after it in the chain file",
    );
  }
  const keyUsage = cert.getExtension(KeyUsagesExtension);
  if (!keyUsage?.critical) {
    problems.push("it lacks a critical keyUsage extension");
  } else if (!(keyUsage.usages & KeyUsageFlags.digitalSignature)) {
    problems.push("its keyUsage does not include digitalSignature");
  }
  const basic = cert.getExtension(BasicConstraintsExtension);
  if (basic?.ca) problems.push("it is a CA certificate; sign with an end-entity certificate issued by it");
  const eku = cert.getExtension(ExtendedKeyUsageExtension);
  const usages = (eku?.usages ?? []).map(String);
  if (!eku) {
    problems.push(
      "it lacks an extendedKeyUsage extension (C2PA wants documentSigning 1.3.6.1.5.5.7.3.36 or emailProtection)",
    );
  } else if (usages.includes(ANY_EKU)) {
    problems.push("its extendedKeyUsage includes anyExtendedKeyUsage, which C2PA forbids");
  } else if (!usages.includes(DOCUMENT_SIGNING_EKU) && !usages.includes(ExtendedKeyUsage.emailProtection)) {
    problems.push("its extendedKeyUsage has neither documentSigning (1.3.6.1.5.5.7.3.36) nor emailProtection");
  }
  const keyProblem = publicKeyProblem(cert);
  if (keyProblem) problems.push(keyProblem);
  if (cert.notBefore > at) problems.push(`it is not valid before ${cert.notBefore.toISOString()}`);
  if (cert.notAfter < at) problems.push(`it expired on ${cert.notAfter.toISOString()}`);
  return problems;
}

function publicKeyProblem(cert: X509Certificate): string | undefined {
  const alg = cert.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  switch (alg.name) {
    case "ECDSA":
      return ["P-256", "P-384", "P-521"].includes(alg.namedCurve ?? "")
        ? undefined
        : `its EC curve ${alg.namedCurve ?? "(unknown)"} is not one C2PA allows (P-256, P-384, P-521)`;
    case "RSASSA-PKCS1-v1_5":
    case "RSA-PSS":
      return (alg.modulusLength ?? 0) >= 2048
        ? undefined
        : `its RSA key has ${alg.modulusLength} bits; C2PA needs at least 2048`;
    case "Ed25519":
      return undefined;
    default:
      return `its key algorithm ${alg.name} is not one C2PA allows (ECDSA P-256/384/521, RSA, Ed25519)`;
  }
}
