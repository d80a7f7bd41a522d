import { readFileSync } from "node:fs";

/**
 * The fixed words diffuse writes into, and looks for in, C2PA manifests. Kept in one place so the signer
 * and the verifier cannot drift apart.
 */

/** IPTC's term for media made by a generative model; C2PA asks for it on the `c2pa.created` action. */
export const TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/** IPTC's term for a mix of generated and other content; counted as AI-generated when reading others' files. */
export const COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA =
  "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia";

/** Name in `claim_generator_info` and in each action's `softwareAgent`. */
export const SOFTWARE_AGENT = "diffuse";

/**
 * Our keys inside C2PA maps that allow extra fields (generator info, action parameters). The specification
 * asks for reverse-domain names so that they cannot collide with its own keys.
 */
export const SIGNING_KEY_FIELD = "org.diffuse.signing";
export const GENERATION_FIELD = "org.diffuse.generation";

/** What SIGNING_KEY_FIELD says, so a reader of the raw manifest knows how far to trust the signature. */
export const SELF_SIGNED_STATEMENT =
  "self-signed local key: proves the image is unchanged since this diffuse installation signed it, not who ran it";
export const CONFIGURED_KEY_STATEMENT = "key and certificate chain configured by the user";

/**
 * Our own version, from package.json. This file sits three folders below the package root both as source
 * (src/responsible/provenance) and when built (dist/responsible/provenance).
 */
export function diffuseVersion(): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
      name?: string;
      version?: string;
    };
    return pkg.name === "diffuse" ? pkg.version : undefined;
  } catch {
    return undefined;
  }
}
