/**
 * Content credentials (C2PA) for diffuse's PNG and JPEG images: sign on output, verify on request. Nothing here loads
 * the C2PA or X.509 libraries until an image is signed or verified (on-demand.ts says why).
 */
export type { ProvenanceInfo } from "./provenance-info.js";
export { signImage, verifyImage, loadSigner, localSigner } from "./on-demand.js";
export { canCarryCredentials, signableFormatNames } from "./signable-formats.js";
export type {
  VerifyOptions,
  VerifyReport,
  VerifyFailure,
  ReportedAction,
  ReportedIngredient,
  ReportedSigner,
} from "./verify-image.js";
export type { ProvenanceSigner } from "./signer.js";
export { resolveSigner, signerConfigFromEnv, type SignerConfig } from "./signer-config.js";
export { defaultProvenanceDir } from "./provenance-dir.js";
export { describeIngredient, ingredientMatches } from "./ingredient.js";
export type { ChainTrust } from "./certificate-chain.js";
export { TRAINED_ALGORITHMIC_MEDIA } from "./vocabulary.js";
