/** The image edits a watermark must survive, through sharp: shared by the watermark eval and its tests. */
import sharp, { type Sharp } from "sharp";
import type { RgbImage } from "../src/image/codec.js";

function raw(image: RgbImage): Sharp {
  return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.length), {
    raw: { width: image.width, height: image.height, channels: 3 },
  });
}

async function pixels(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

export const jpeg = async (image: RgbImage, quality: number): Promise<RgbImage> =>
  pixels(sharp(await raw(image).jpeg({ quality }).toBuffer()));
export const halve = (image: RgbImage): Promise<RgbImage> =>
  pixels(raw(image).resize(Math.round(image.width / 2), Math.round(image.height / 2)));
export const brighten = (image: RgbImage): Promise<RgbImage> => pixels(raw(image).modulate({ brightness: 1.2 }));

/** Keeps 90 % of the width and of the height; `x`, `y` in [0, 1] place the kept window. */
export function crop(image: RgbImage, x: number, y: number): Promise<RgbImage> {
  const width = Math.round(image.width * 0.9),
    height = Math.round(image.height * 0.9);
  return pixels(
    raw(image).extract({
      left: Math.round((image.width - width) * x),
      top: Math.round((image.height - height) * y),
      width,
      height,
    }),
  );
}
