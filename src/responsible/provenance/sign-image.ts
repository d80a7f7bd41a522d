import { randomUUID } from "node:crypto";
import {
  ActionAssertion,
  ActionType,
  AssertionLabels,
  ClaimVersion,
  DataHashAssertion,
  DigitalSourceType,
  IngredientAssertion,
  ManifestStore,
  RelationshipType,
  type Action,
  type HashedURI,
} from "@trustnxt/c2pa-ts/manifest";
import { InputError } from "../../errors.js";
import { IMAGE_FORMATS } from "../../image/output-format.js";
import { GeneratorClaim } from "./generator-claim.js";
import { describeIngredient } from "./ingredient.js";
import { openSignableAsset } from "./signable-asset.js";
import { signableFormatNames } from "./signable-formats.js";
import type { ProvenanceInfo } from "./provenance-info.js";
import type { ProvenanceSigner } from "./signer.js";
import {
  CONFIGURED_KEY_STATEMENT,
  diffuseVersion,
  GENERATION_FIELD,
  SELF_SIGNED_STATEMENT,
  SIGNING_KEY_FIELD,
  SOFTWARE_AGENT,
} from "./vocabulary.js";

export type { ProvenanceInfo } from "./provenance-info.js";

const SHA256 = "SHA-256";
/** Room for the COSE signature bytes added after the manifest's size is fixed (RSA-4096 needs 512). */
const SIGNATURE_RESERVE = 1024;

/**
 * Returns the image (PNG or JPEG) with a signed C2PA manifest: in a caBX chunk before a PNG's image data, as
 * the specification recommends, or in APP11 segments of a JPEG. The manifest holds:
 * - `c2pa.actions.v2`: one `c2pa.created` action with digitalSourceType trainedAlgorithmicMedia and
 *   softwareAgent diffuse; with an input image it references that image's ingredient, which is how the
 *   specification describes generative AI fed with inputs (`c2pa.opened` would require a parentOf
 *   ingredient, i.e. claim the output is an edit of the sketch, and `c2pa.edited` may not come first);
 * - `c2pa.ingredient.v3` (img2img only): relationship inputTo, media type, SHA-256 of the input;
 * - `c2pa.hash.data`: SHA-256 of every byte of the file except the manifest (the hard binding).
 *
 * Sign last: any byte changed afterwards, a text chunk or EXIF added included, breaks the hard binding.
 */
export async function signImage(image: Uint8Array, info: ProvenanceInfo, signer: ProvenanceSigner): Promise<Buffer> {
  const opened = openSignableAsset(image, "the image to sign");
  if (!opened)
    throw new InputError(
      `only ${signableFormatNames()} images can carry diffuse's C2PA manifest; encode the image as one of those first`,
    );
  const { asset, format } = opened;
  if (asset.getManifestJUMBF()) {
    throw new InputError(
      `the ${IMAGE_FORMATS[format].name} already carries a C2PA manifest; diffuse signs only images it has just encoded, and replacing another manifest would drop its history`,
    );
  }
  const version = diffuseVersion();
  const store = new ManifestStore();
  const manifest = store.createManifest({
    claimVersion: ClaimVersion.V2,
    assetFormat: IMAGE_FORMATS[format].mimeType,
    instanceID: `xmp:iid:${randomUUID()}`,
    defaultHashAlgorithm: SHA256,
    signer: signer.cose,
  });
  const base = manifest.claim!;
  const claim = new GeneratorClaim({
    [SIGNING_KEY_FIELD]: signer.selfSigned ? SELF_SIGNED_STATEMENT : CONFIGURED_KEY_STATEMENT,
  });
  claim.version = ClaimVersion.V2;
  claim.instanceID = base.instanceID;
  claim.defaultAlgorithm = base.defaultAlgorithm;
  claim.signatureRef = base.signatureRef;
  claim.claimGeneratorName = SOFTWARE_AGENT;
  claim.claimGeneratorVersion = version;
  manifest.claim = claim;
  // The library reserves 25 kB for an RFC 3161 timestamp we do not request; keep the files small.
  manifest.signature!.signatureData.paddingLength = SIGNATURE_RESERVE;

  // Referenced from the action, so its hashed URI must be filled in (at signing) before the action is hashed.
  let ingredientRefs: HashedURI[] | undefined;
  if (info.ingredient) {
    const described = describeIngredient(info.ingredient, info.ingredientTitle);
    const ingredient = IngredientAssertion.createV3(RelationshipType.InputTo);
    ingredient.title = described.title;
    ingredient.format = described.format;
    ingredient.data = { uri: described.uri, hash: described.sha256, algorithm: SHA256 };
    ingredient.description = "input image (sketch or photo) the model generated from";
    manifest.addAssertion(ingredient);
    ingredientRefs = [manifest.createAssertionReference(ingredient)];
  }

  const actions = new ActionAssertion();
  actions.label = AssertionLabels.actionsV2;
  actions.actions.push(createdAction(info, version, ingredientRefs));
  manifest.addAssertion(actions);

  const binding = DataHashAssertion.create(SHA256);
  binding.name = "jumbf manifest";
  manifest.addAssertion(binding);

  // The manifest's size must be final before the image is hashed around it: the padding in the data-hash
  // and signature boxes absorbs the bytes the hash, exclusion and signature add later.
  await asset.ensureManifestSpace(store.measureSize());
  await binding.updateWithAsset(asset);
  await manifest.sign(signer.cose);
  await asset.writeManifestJUMBF(store.getBytes());
  return Buffer.from(await asset.getDataRange());
}

function createdAction(
  info: ProvenanceInfo,
  version: string | undefined,
  ingredients: HashedURI[] | undefined,
): Action {
  const generation: Record<string, unknown> = { model: info.model, sampler: info.sampler };
  const optional = {
    prompt: info.prompt,
    negativePrompt: info.negativePrompt,
    seed: cborSeed(info.seed),
    steps: info.steps,
    cfgScale: info.cfgScale,
    denoisingStrength: info.ingredient ? info.denoisingStrength : undefined,
    safeguardsOff: info.safeguardsOff?.length ? [...info.safeguardsOff] : undefined,
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined && v !== "") generation[k] = v;
  return {
    action: ActionType.C2paCreated,
    digitalSourceType: DigitalSourceType.TrainedAlgorithmicMedia,
    softwareAgent: version ? { name: SOFTWARE_AGENT, version } : { name: SOFTWARE_AGENT },
    parameters: ingredients ? { ingredients, [GENERATION_FIELD]: generation } : { [GENERATION_FIELD]: generation },
  };
}

/** A seed a CBOR reader gets back exactly: a plain integer while a number holds it, else a bigint (uint64 in CBOR). */
function cborSeed(seed: number | bigint | undefined): number | bigint | undefined {
  return typeof seed === "bigint" && seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : seed;
}
