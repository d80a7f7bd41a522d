/**
 * The inpainting mask: a layer painted over the sketch. On screen it is a translucent tint so the picture stays
 * visible underneath; what the server gets is the convention it expects, white = repaint, black = keep.
 */
import { context } from "./undo.js";

/** The tint strokes are drawn in; only their alpha matters for the exported mask. */
const TINT = "#ff3d7f";

export class MaskLayer {
  readonly canvas: HTMLCanvasElement;

  constructor(width: number, height: number) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "layer layer-mask";
    this.canvas.width = width;
    this.canvas.height = height;
  }

  get paint(): string {
    return TINT;
  }

  /** True when nothing is painted, i.e. the job is plain img2img rather than inpainting. */
  isEmpty(): boolean {
    const { data } = context(this.canvas).getImageData(0, 0, this.canvas.width, this.canvas.height);
    for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) return false;
    return true;
  }

  /** Swaps painted and unpainted areas: handy for "repaint everything except this". */
  invert(): void {
    const ctx = context(this.canvas);
    const img = ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
    const tint = [
      parseInt(TINT.slice(1, 3), 16),
      parseInt(TINT.slice(3, 5), 16),
      parseInt(TINT.slice(5, 7), 16),
    ] as const;
    for (let i = 0; i < img.data.length; i += 4) {
      img.data[i] = tint[0];
      img.data[i + 1] = tint[1];
      img.data[i + 2] = tint[2];
      img.data[i + 3] = 255 - img.data[i + 3]!;
    }
    ctx.putImageData(img, 0, 0);
  }

  /**
   * The mask at the generation size as a PNG data URL. Soft brush edges are thresholded at half coverage so the
   * server sees the same boundary the user sees.
   */
  toDataUrl(width: number, height: number): string {
    const out = document.createElement("canvas");
    out.width = width;
    out.height = height;
    const ctx = context(out);
    ctx.drawImage(this.canvas, 0, 0, width, height);
    const img = ctx.getImageData(0, 0, width, height);
    for (let i = 0; i < img.data.length; i += 4) {
      const v = img.data[i + 3]! >= 128 ? 255 : 0;
      img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
      img.data[i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return out.toDataURL("image/png");
  }
}
