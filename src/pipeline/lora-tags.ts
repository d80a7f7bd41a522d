import { InputError } from "../errors.js";
import { extractExtraNetworks } from "../tokenizer/extra-networks.js";

/** A LoRA a prompt names, with A1111's two multipliers. */
export interface LoraMention {
  readonly name: string;
  readonly textEncoder: number;
  readonly unet: number;
}

/**
 * The prompts without their extra-network tags, and the LoRAs the tags name, in A1111's syntax:
 * `<lora:NAME>` (multiplier 1), `<lora:NAME:W>`, `<lora:NAME:W_te:W_unet>`, with `te=` and `unet=` as named
 * arguments (`<lora:NAME:0.8:unet=0.5>`); `<lyco:...>` is the same (A1111 took over the LyCORIS extension's tag).
 * Any other tag type is refused rather than dropped without effect.
 */
export function loraTags(texts: readonly string[]): { texts: string[]; loras: LoraMention[] } {
  const loras: LoraMention[] = [];
  const stripped = texts.map((text) => {
    const { text: rest, tags } = extractExtraNetworks(text);
    for (const tag of tags) {
      const type = tag.type.toLowerCase();
      if (type !== "lora" && type !== "lyco") {
        throw new InputError(
          `${tag.text}: "${tag.type}" networks are not supported; diffuse applies LoRAs and LyCORIS files, written <lora:NAME:WEIGHT>`,
        );
      }
      loras.push(mention(tag.text, tag.args));
    }
    return rest;
  });
  return { texts: stripped, loras };
}

function mention(tag: string, args: readonly string[]): LoraMention {
  const positional: string[] = [];
  const named = new Map<string, string>();
  for (const a of args) {
    const eq = a.indexOf("=");
    if (eq >= 0) named.set(a.slice(0, eq).trim(), a.slice(eq + 1).trim());
    else positional.push(a.trim());
  }
  const name = positional[0] ?? "";
  if (name === "")
    throw new InputError(
      `${tag}: no LoRA name; write <lora:NAME:WEIGHT>, NAME being the file name without .safetensors`,
    );
  const unknown = [...named.keys()].filter((k) => k !== "te" && k !== "unet");
  if (unknown.length > 0 || positional.length > 3) {
    const what = unknown.length > 0 ? `"${unknown[0]}="` : `a fourth argument ("${positional[3]}", A1111's dyn)`;
    throw new InputError(
      `${tag}: ${what} is not supported; write <lora:NAME:WEIGHT> or <lora:NAME:TE_WEIGHT:UNET_WEIGHT> (te= and unet= also work)`,
    );
  }
  const number = (value: string, what: string) => {
    const n = Number(value);
    if (value === "" || !Number.isFinite(n))
      throw new InputError(`${tag}: the ${what} "${value}" is not a number; write <lora:NAME:0.8>`);
    return n;
  };
  const te = named.has("te")
    ? number(named.get("te")!, "text encoder weight")
    : positional[1] !== undefined
      ? number(positional[1], "weight")
      : 1;
  const unet = named.has("unet")
    ? number(named.get("unet")!, "UNet weight")
    : positional[2] !== undefined
      ? number(positional[2], "UNet weight")
      : te;
  return { name, textEncoder: te, unet };
}
