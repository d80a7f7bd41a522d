import { X509Certificate } from "node:crypto";

/**
 * How far a manifest's certificate chain can be trusted:
 * - `trusted`: it leads to one of the trust anchors the reader supplied;
 * - `self-signed`: it ends in a root that signed itself and came with the manifest, so it vouches only for
 *   itself (diffuse's default local key is of this kind);
 * - `unknown-issuer`: it ends in a certificate whose issuer is neither in the manifest nor a trust anchor;
 * - `broken`: a certificate in it was not issued by the next one, so the chain proves nothing.
 * A signature can be intact under any of these; trust is about who signed, not whether the image changed.
 */
export type ChainTrust = "trusted" | "self-signed" | "unknown-issuer" | "broken";

export interface ChainReport {
  readonly trust: ChainTrust;
  /** Subjects from the signing certificate up, as "CN=..., O=...". */
  readonly subjects: string[];
  /** For `broken`: which link failed. */
  readonly problem?: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, in file order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(PEM_CERTIFICATE) ?? [];
}

export function displayName(cert: X509Certificate): string {
  return cert.subject.split("\n").join(", ");
}

/** `chain` is DER or PEM, signing certificate first, as C2PA's x5chain orders it. */
export function evaluateChain(
  chain: ReadonlyArray<Uint8Array | string>,
  anchors: readonly X509Certificate[] = [],
): ChainReport {
  const certs = chain.map((c) => new X509Certificate(typeof c === "string" ? c : Buffer.from(c)));
  const subjects = certs.map(displayName);
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!issuedBy(certs[i]!, certs[i + 1]!)) {
      return { trust: "broken", subjects, problem: `"${subjects[i + 1]}" did not issue "${subjects[i]}"` };
    }
  }
  const anchorPrints = new Set(anchors.map((a) => a.fingerprint256));
  const top = certs[certs.length - 1];
  if (!top) return { trust: "broken", subjects, problem: "the manifest carries no certificate" };
  if (certs.some((c) => anchorPrints.has(c.fingerprint256)) || anchors.some((a) => issuedBy(top, a))) {
    return { trust: "trusted", subjects };
  }
  return { trust: issuedBy(top, top) ? "self-signed" : "unknown-issuer", subjects };
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false; // an unsupported key type cannot vouch for anything
  }
}
