import type { Preprocessor } from "./preprocessor.js";

/** A1111's "invert (from white bg & black line)": 255 - value per channel, for line art drawn dark on white. */
export const INVERT: Preprocessor = {
  name: "invert",
  aliases: ["invert (from white bg & black line)"],
  run(image) {
    const data = new Uint8Array(image.data.length);
    for (let i = 0; i < data.length; i++) data[i] = 255 - image.data[i]!;
    return { width: image.width, height: image.height, data };
  },
};
