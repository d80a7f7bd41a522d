/**
 * Kept apart from signer-config.ts, whose functions return the signer (and with it the C2PA library's types): this
 * shape is part of the public LoadOptions, which must compile in a user's project without those types.
 */
/** Where the signing key comes from. Both paths, or neither (then the local self-signed identity is used). */
export interface SignerConfig {
  /** PEM private key (PKCS#8 or SEC1 for EC keys). */
  readonly keyPath?: string;
  /** PEM certificates: the signing certificate first, then the CAs that issued it. */
  readonly certPath?: string;
  /** Folder of the generated local identity; defaults to ~/.config/diffuse/c2pa. */
  readonly localDir?: string;
}
