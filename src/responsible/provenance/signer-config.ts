import { InputError } from "../../errors.js";
import { loadSigner, localSigner } from "./on-demand.js";
import { defaultProvenanceDir } from "./provenance-dir.js";
import type { SignerConfig } from "./signer-settings.js";
import type { ProvenanceSigner } from "./signer.js";

export type { SignerConfig } from "./signer-settings.js";

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
