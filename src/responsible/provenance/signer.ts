import { constants, createPrivateKey, sign, X509Certificate as NodeCertificate, type KeyObject } from "node:crypto";
import { X509Certificate } from "@peculiar/x509";
import type { Signer } from "@trustnxt/c2pa-ts/cose";
import { InputError } from "../../errors.js";
import { readRegularFile } from "../../regular-file.js";
import { displayName, evaluateChain, splitPemCertificates } from "./certificate-chain.js";
import { signingCertificateProblems } from "./certificate-profile.js";

/** A key and certificate chain ready to sign C2PA manifests. */
export interface ProvenanceSigner {
  /** What the C2PA library signs with (COSE_Sign1 over the claim). */
  readonly cose: Signer;
  /** True for diffuse's generated local identity; written into the claim generator info. */
  readonly selfSigned: boolean;
  /** Where the key came from, for messages: a path or a folder. */
  readonly source: string;
  /** Subject of the signing certificate. */
  readonly subject: string;
}

/** COSE algorithm identifiers (RFC 9053) for the key types C2PA allows. */
const ES256 = -7,
  ES384 = -35,
  ES512 = -36,
  EDDSA = -8,
  PS256 = -37;

/** Reads a PEM private key and a PEM certificate chain (signing certificate first) from files. */
export async function loadSigner(keyPath: string, certPath: string): Promise<ProvenanceSigner> {
  const [keyPem, chainPem] = await Promise.all([
    readText(keyPath, "C2PA private key"),
    readText(certPath, "C2PA certificate chain"),
  ]);
  return signerFromPem(keyPem, chainPem, { selfSigned: false, keyName: keyPath, chainName: certPath });
}

export interface SignerFromPemOptions {
  readonly selfSigned: boolean;
  /** How to call the key and the chain in error messages (their paths). */
  readonly keyName?: string;
  readonly chainName?: string;
}

/**
 * Checks everything a verifier will check, so a bad key is refused once, here, with the reason, instead of
 * silently producing images whose credentials every reader rejects.
 */
export function signerFromPem(keyPem: string, chainPem: string, options: SignerFromPemOptions): ProvenanceSigner {
  const keyName = options.keyName ?? "the private key";
  const chainName = options.chainName ?? "the certificate chain";
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new InputError(
      `cannot read a private key from ${keyName} (${(e as Error).message}); give a PEM key ("BEGIN PRIVATE KEY" or "BEGIN EC PRIVATE KEY"), unencrypted`,
    );
  }
  const pems = splitPemCertificates(chainPem);
  if (pems.length === 0) {
    throw new InputError(
      `${chainName} holds no PEM certificate ("BEGIN CERTIFICATE"); give the signing certificate followed by its issuing CA certificates`,
    );
  }
  const leaf = new NodeCertificate(pems[0]!);
  if (!leaf.checkPrivateKey(key)) {
    throw new InputError(
      `the private key in ${keyName} does not belong to the first certificate in ${chainName} ("${displayName(leaf)}"); put the signing certificate first, then its issuers`,
    );
  }
  const chain = evaluateChain(pems);
  if (chain.trust === "broken") {
    throw new InputError(
      `${chainName} is not a chain: ${chain.problem}; list the signing certificate first and each certificate's issuer after it`,
    );
  }
  const certificate = new X509Certificate(pems[0]!);
  const problems = signingCertificateProblems(certificate);
  if (problems.length) {
    throw new InputError(
      `the certificate in ${chainName} ("${displayName(leaf)}") cannot sign C2PA manifests: ${problems.join("; ")}`,
    );
  }
  const cose = new NodeCoseSigner(
    key,
    coseAlgorithm(key, keyName),
    certificate,
    pems.slice(1).map((p) => new X509Certificate(p)),
  );
  return { cose, selfSigned: options.selfSigned, source: keyName, subject: displayName(leaf) };
}

/**
 * Signs COSE_Sign1 structures with node:crypto. The C2PA library's own signer writes ECDSA signatures in
 * ASN.1 DER, which some readers tolerate but RFC 9053 (section 2.1) does not allow: COSE wants r and s as
 * fixed-length big-endian integers side by side, which is what `dsaEncoding: "ieee-p1363"` produces.
 */
class NodeCoseSigner implements Signer {
  constructor(
    private readonly key: KeyObject,
    readonly algorithm: number,
    readonly certificate: X509Certificate,
    readonly chainCertificates: X509Certificate[],
  ) {}

  async sign(payload: Uint8Array): Promise<Uint8Array> {
    switch (this.algorithm) {
      case EDDSA:
        return new Uint8Array(sign(null, payload, this.key));
      case PS256:
        return new Uint8Array(
          sign("sha256", payload, { key: this.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
        );
      default: {
        const hash = this.algorithm === ES384 ? "sha384" : this.algorithm === ES512 ? "sha512" : "sha256";
        return new Uint8Array(sign(hash, payload, { key: this.key, dsaEncoding: "ieee-p1363" }));
      }
    }
  }
}

function coseAlgorithm(key: KeyObject, keyName: string): number {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  switch (key.asymmetricKeyType) {
    case "ec":
      if (curve === "prime256v1") return ES256;
      if (curve === "secp384r1") return ES384;
      if (curve === "secp521r1") return ES512;
      break;
    case "ed25519":
      return EDDSA;
    case "rsa":
    case "rsa-pss":
      return PS256; // C2PA allows RSA only with PSS padding
  }
  throw new InputError(
    `the key in ${keyName} is ${key.asymmetricKeyType}${curve ? ` on ${curve}` : ""}, which C2PA cannot sign with; use an EC key on P-256 (ES256), P-384 or P-521, Ed25519, or RSA of 2048 bits or more`,
  );
}

/** A key or certificate chain in PEM is a few kilobytes: a megabyte is far more than any. */
export const MAX_PEM_BYTES = 2 ** 20;

/** PEM keys and certificate chains are a few kilobytes; a named pipe or device given by mistake is refused, not read. */
async function readText(path: string, what: string): Promise<string> {
  return readRegularFile(path, InputError, {
    hint: `pass the path of the ${what} (a PEM file)`,
    maxBytes: MAX_PEM_BYTES,
  }).toString("utf8");
}
