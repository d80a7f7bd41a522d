import { InputError } from "../../errors.js";
import { defaultProvenanceDir, localSigner } from "./local-identity.js";
import { loadSigner, type ProvenanceSigner } from "./signer.js";

/** Where the signing key comes from. Both paths, or neither (then the local self-signed identity is used). */
export interface SignerConfig {
  /** PEM private key (PKCS#8 or SEC1 for EC keys). */
  readonly keyPath?: string;
  /** PEM certificates: the signing certificate first, then the CAs that issued it. */
  readonly certPath?: string;
  /** Folder of the generated local identity; defaults to ~/.config/diffuse/c2pa. */
  readonly localDir?: string;
}

/** The user's key from DIFFUSE_C2PA_KEY / DIFFUSE_C2PA_CERT, for a CLI or server without explicit options. */
export function signerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): SignerConfig {
  return {
    keyPath: env.DIFFUSE_C2PA_KEY || undefined,
    certPath: env.DIFFUSE_C2PA_CERT || undefined,
    localDir: defaultProvenanceDir(env),
  };
}

/** The configured key, or the local self-signed identity when none is configured. */
export async function resolveSigner(config: SignerConfig = {}): Promise<ProvenanceSigner> {
  const { keyPath, certPath } = config;
  if (keyPath && certPath) return loadSigner(keyPath, certPath);
  if (keyPath || certPath) {
    throw new InputError(
      keyPath
        ? `a C2PA private key (${keyPath}) was given without its certificate chain; give both, or neither to use the local self-signed key`
        : `a C2PA certificate chain (${certPath}) was given without its private key; give both, or neither to use the local self-signed key`,
    );
  }
  return localSigner(config.localDir ?? defaultProvenanceDir());
}
