/** Content credentials (C2PA) for diffuse's PNG and JPEG images: sign on output, verify on request. */
export { signImage, type ProvenanceInfo } from "./sign-image.js";
export { canCarryCredentials, signableFormatNames } from "./signable-asset.js";
export {
  verifyImage,
  type VerifyOptions,
  type VerifyReport,
  type VerifyFailure,
  type ReportedAction,
  type ReportedIngredient,
  type ReportedSigner,
} from "./verify-image.js";
export { loadSigner, signerFromPem, type ProvenanceSigner } from "./signer.js";
export { resolveSigner, signerConfigFromEnv, type SignerConfig } from "./signer-config.js";
export { defaultProvenanceDir, localSigner } from "./local-identity.js";
export { describeIngredient, ingredientMatches } from "./ingredient.js";
export type { ChainTrust } from "./certificate-chain.js";
export { TRAINED_ALGORITHMIC_MEDIA } from "./vocabulary.js";
