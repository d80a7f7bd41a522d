import type { ProvenanceInfo } from "./provenance-info.js";
import type { ProvenanceSigner } from "./signer.js";
import type { VerifyOptions, VerifyReport } from "./verify-image.js";

/**
 * The provenance functions that sign or verify, as the rest of diffuse calls them: each loads its module, and with it
 * the C2PA and X.509 libraries (c2pa-ts, @peculiar/x509, pkijs), on its first call. Those libraries cost about 0.45 s
 * of CPU to load, a third of a `diffuse` process's start-up, and most runs never sign or verify anything (`--help`,
 * `info`, a refused request, `--no-provenance`). import() keeps each module once loaded, so later calls pay nothing.
 * Only types are imported statically from those modules (erased when compiled).
 */

/** The image (PNG or JPEG) with a signed C2PA manifest; see sign-image.ts. */
export async function signImage(image: Uint8Array, info: ProvenanceInfo, signer: ProvenanceSigner): Promise<Buffer> {
  return (await import("./sign-image.js")).signImage(image, info, signer);
}

/** Reads and validates the C2PA manifest of a PNG or JPEG; see verify-image.ts. */
export async function verifyImage(image: Uint8Array, options: VerifyOptions = {}): Promise<VerifyReport> {
  return (await import("./verify-image.js")).verifyImage(image, options);
}

/** The signer of a PEM private key and certificate chain (signing certificate first) read from files; see signer.ts. */
export async function loadSigner(keyPath: string, certPath: string): Promise<ProvenanceSigner> {
  return (await import("./signer.js")).loadSigner(keyPath, certPath);
}

/** The local self-signed identity in `dir`, created there on first use; see local-identity.ts. */
export async function localSigner(dir?: string): Promise<ProvenanceSigner> {
  return (await import("./local-identity.js")).localSigner(dir);
}
