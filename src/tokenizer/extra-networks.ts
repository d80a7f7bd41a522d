/**
 * AUTOMATIC1111's extra-network tags: `<lora:watercolor:0.8>`, `<lora:name:0.8:0.5>`, `<lora:name:1:unet=0.6>`.
 * A tag is `<` + a type (word characters) + `:` + arguments separated by `:` + `>`. Every tag is cut out of the
 * prompt before the text is tokenized (the text encoder never sees it), exactly where it stands and with nothing put
 * in its place, as A1111 does: "nu<lora:x:1>de" is read as "nude". The prompt policy reads prompts the same way.
 */

export interface ExtraNetworkTag {
  /** "lora", "lyco", "hypernet", ... as written. */
  readonly type: string;
  /** The arguments after the type, as written (A1111 splits them on ":"). */
  readonly args: readonly string[];
  /** The whole tag as written. */
  readonly text: string;
}

/** A1111's `<(\w+):([^>]+)>`, with Python's Unicode word characters. */
const TAG = /<([\p{L}\p{N}_]+):([^>]+)>/gu;

/** The prompt without its tags, and the tags in order. */
export function extractExtraNetworks(prompt: string): { text: string; tags: ExtraNetworkTag[] } {
  const tags: ExtraNetworkTag[] = [];
  const text = prompt.replace(TAG, (whole, type: string, args: string) => {
    tags.push({ type, args: args.split(":"), text: whole });
    return "";
  });
  return { text, tags };
}
