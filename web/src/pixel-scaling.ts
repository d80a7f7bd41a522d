/**
 * Smooth scaling blurs a small picture shown large (a 64 px model's result in a 600 px frame reads as a smudge);
 * nearest-neighbour keeps its pixels sharp. An image is marked `data-pixelated` while it is drawn larger than its
 * natural size (in CSS pixels, so a 512 px result on a high-density phone screen stays smooth), and the style sheet
 * switches its scaling then. Images drawn at or below their natural size keep smooth scaling, which downscales better.
 */
export class PixelScaling {
  private readonly observer = new ResizeObserver((entries) => {
    for (const e of entries) update(e.target as HTMLImageElement);
  });

  /** Keeps `img` marked as it loads new pictures and as its box changes size. */
  watch(img: HTMLImageElement): void {
    img.addEventListener("load", () => update(img));
    this.observer.observe(img);
    update(img);
  }

  /** Stops watching every image (before a list of them is replaced), so removed images are not held. */
  forgetAll(): void {
    this.observer.disconnect();
  }
}

function update(img: HTMLImageElement): void {
  img.toggleAttribute("data-pixelated", drawnScale(img) > 1);
}

/** How many CSS pixels one image pixel covers, as object-fit draws it in the element's box (0 before it loads). */
function drawnScale(img: HTMLImageElement): number {
  const { naturalWidth: nw, naturalHeight: nh, clientWidth: cw, clientHeight: ch } = img;
  if (nw === 0 || nh === 0) return 0;
  const fit = getComputedStyle(img).objectFit;
  if (fit === "contain") return Math.min(cw / nw, ch / nh);
  if (fit === "cover") return Math.max(cw / nw, ch / nh);
  if (fit === "none") return 1;
  if (fit === "scale-down") return Math.min(1, cw / nw, ch / nh);
  // fill: stretched to the box; enlarged along either side counts.
  return Math.max(cw / nw, ch / nh);
}
