import { webcrypto } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from "@peculiar/x509";
import { InputError } from "../../errors.js";
import { readRegularFile } from "../../regular-file.js";
import { DOCUMENT_SIGNING_EKU } from "./certificate-profile.js";
import { defaultProvenanceDir } from "./provenance-dir.js";
import { MAX_PEM_BYTES, signerFromPem, type ProvenanceSigner } from "./signer.js";

/**
 * diffuse's default signing identity: generated on first use and kept in the user's config folder, so every
 * image from one installation carries the same signer. It is self-signed (nobody vouches for it), which the
 * manifest states; it still proves that an image is unchanged since this installation signed it.
 *
 * C2PA refuses a self-signed *signing* certificate, so the identity is a small local CA plus one signing
 * certificate it issued. The CA's private key is thrown away right after, so nothing can ever issue a second
 * certificate under it.
 */

const KEY_FILE = "signer.key";
const CHAIN_FILE = "signer-chain.pem";
const README_FILE = "README.txt";

const ORGANISATION = "diffuse (self-signed local identity)";
const VALIDITY_YEARS = 10;
const EC_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** The local identity in `dir`, created there on first use. */
export async function localSigner(dir: string = defaultProvenanceDir()): Promise<ProvenanceSigner> {
  const existing = await readIdentity(dir);
  if (existing) return existing;
  await createIdentity(dir);
  const created = await readIdentity(dir);
  if (!created)
    throw new InputError(`could not create the local C2PA signing key in ${dir}; check that the folder is writable`);
  return created;
}

async function readIdentity(dir: string): Promise<ProvenanceSigner | undefined> {
  const [key, chain] = await Promise.all([readOptional(join(dir, KEY_FILE)), readOptional(join(dir, CHAIN_FILE))]);
  if (key === undefined && chain === undefined) return undefined;
  if (key === undefined || chain === undefined) {
    throw new InputError(
      `the local C2PA signing identity in ${dir} is incomplete (it needs both ${KEY_FILE} and ${CHAIN_FILE}); delete the folder and diffuse makes a new one`,
    );
  }
  try {
    return signerFromPem(key, chain, {
      selfSigned: true,
      keyName: join(dir, KEY_FILE),
      chainName: join(dir, CHAIN_FILE),
    });
  } catch (e) {
    if (e instanceof InputError)
      throw new InputError(
        `${e.message}. This is diffuse's own local key: delete ${dir} and a new one is made on next use`,
      );
    throw e;
  }
}

/**
 * Writes the identity into a fresh sibling folder and renames it into place, so two diffuse processes
 * starting together never see half an identity or pair one's key with the other's certificate: the second
 * rename fails and that process uses the winner's files.
 */
async function createIdentity(dir: string): Promise<void> {
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  const staging = await mkdtemp(`${dir}.tmp-`);
  try {
    const { keyPem, chainPem } = await generateIdentity();
    await writeFile(join(staging, KEY_FILE), keyPem, { mode: 0o600 });
    await writeFile(join(staging, CHAIN_FILE), chainPem, { mode: 0o644 });
    await writeFile(join(staging, README_FILE), README, { mode: 0o644 });
    try {
      await rename(staging, dir); // replaces `dir` only when it is absent or an empty folder
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function generateIdentity(): Promise<{ keyPem: string; chainPem: string }> {
  const crypto = webcrypto as unknown as Crypto;
  const notBefore = new Date(Date.now() - 60_000); // tolerate small clock differences between processes
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);

  const caKeys = (await crypto.subtle.generateKey(EC_P256, false, ["sign", "verify"])) as CryptoKeyPair;
  const ca = await X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=diffuse local CA, O=${ORGANISATION}`,
      keys: caKeys,
      signingAlgorithm: EC_P256,
      notBefore,
      notAfter,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const signerKeys = (await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const leaf = await X509CertificateGenerator.create(
    {
      subject: `CN=diffuse local signer, O=${ORGANISATION}`,
      issuer: ca.subject,
      publicKey: signerKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: EC_P256,
      notBefore,
      notAfter,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([DOCUMENT_SIGNING_EKU]),
        await AuthorityKeyIdentifierExtension.create(ca, false, crypto),
        await SubjectKeyIdentifierExtension.create(signerKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", signerKeys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`;
  return { keyPem, chainPem: `${leaf.toString("pem")}\n${ca.toString("pem")}\n` };
}

async function readOptional(path: string): Promise<string | undefined> {
  if (!existsSync(path)) return undefined;
  return readRegularFile(path, InputError, {
    hint: "check it, or move it aside to make a new local identity",
    maxBytes: MAX_PEM_BYTES,
  }).toString("utf8");
}

const README = `diffuse's local C2PA signing identity
======================================

diffuse signs the content credentials (C2PA manifest) of every PNG it writes with the key in this folder.
It was generated here on first use and is self-signed: no certificate authority vouches for it, and each
manifest says so. It proves that an image is unchanged since this installation signed it, not who ran it.

  ${KEY_FILE}        the signing key (keep it private)
  ${CHAIN_FILE}  the signing certificate, then the local CA that issued it (the CA's key was discarded)

To sign with a certificate from a real authority instead, give diffuse its key and chain (PEM files, the
signing certificate first): set DIFFUSE_C2PA_KEY and DIFFUSE_C2PA_CERT to their paths. Delete this folder
to start over with a new local identity.
`;
