/** Content credentials (C2PA) for diffuse's PNGs: sign on output, verify on request. */
export { signPng, type ProvenanceInfo } from "./sign-png.js";
export { verifyPng, type VerifyOptions, type VerifyReport, type VerifyFailure, type ReportedAction, type ReportedIngredient, type ReportedSigner } from "./verify-png.js";
export { loadSigner, signerFromPem, type ProvenanceSigner } from "./signer.js";
export { resolveSigner, signerConfigFromEnv, type SignerConfig } from "./signer-config.js";
export { defaultProvenanceDir, localSigner } from "./local-identity.js";
export { describeIngredient, ingredientMatches } from "./ingredient.js";
export type { ChainTrust } from "./certificate-chain.js";
export { TRAINED_ALGORITHMIC_MEDIA } from "./vocabulary.js";
