import { CBORBox, type SuperBox } from "@trustnxt/c2pa-ts/jumbf";
import { Claim } from "@trustnxt/c2pa-ts/manifest";

/**
 * The claim's `claim_generator_info` map: name and version, plus any extra keys (the specification allows
 * `* tstr => any`). diffuse uses an extra key to state how its signing key should be trusted.
 */
export type GeneratorInfo = { readonly name?: string; readonly version?: string } & Readonly<Record<string, unknown>>;

/**
 * A claim whose generator info carries extra keys. The C2PA library writes only name and version, so this
 * adds the rest to the CBOR it produced, before the claim is hashed and signed.
 */
export class GeneratorClaim extends Claim {
  constructor(private readonly extraInfo: Readonly<Record<string, unknown>>) {
    super();
  }

  override generateJUMBFBox(): SuperBox {
    const box = super.generateJUMBFBox();
    const content = box.contentBoxes[0];
    if (content instanceof CBORBox) {
      const map = content.content as { claim_generator_info?: unknown };
      const info = map.claim_generator_info;
      if (Array.isArray(info))
        info[0] = { ...(info[0] as object), ...this.extraInfo }; // v1 claims keep a list
      else map.claim_generator_info = { ...(info as object), ...this.extraInfo };
      content.generateRawContent();
    }
    return box;
  }
}

/** The generator info of a claim read from a file, extra keys included (the library keeps only two). */
export function readGeneratorInfo(claim: Claim): GeneratorInfo {
  const content = claim.sourceBox?.contentBoxes[0];
  const raw =
    content instanceof CBORBox
      ? (content.content as { claim_generator_info?: unknown; claim_generator?: unknown })
      : undefined;
  const info = Array.isArray(raw?.claim_generator_info) ? raw.claim_generator_info[0] : raw?.claim_generator_info;
  if (info && typeof info === "object") return info as GeneratorInfo;
  return {
    name: claim.claimGeneratorName ?? (typeof raw?.claim_generator === "string" ? raw.claim_generator : undefined),
  };
}
