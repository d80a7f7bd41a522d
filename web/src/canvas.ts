/**
 * The drawing surface: a picture (white, or an uploaded or generated image), the user's strokes on top of it,
 * and the inpainting mask above both. Keeping strokes apart from the picture lets the eraser reveal the photo
 * instead of punching white holes in it.
 *
 * The layers are drawn at a working resolution of at least 512 px on the long side, whatever the generation
 * size, so a 64 px test model still gets smooth strokes; the export resamples to the generation size.
 */
import { MaskLayer } from "./mask-brush.js";
import type { SavedSketch } from "./sketch-store.js";
import { context, UndoStack } from "./undo.js";

export type Tool = "brush" | "eraser";
export type Layer = "sketch" | "mask";

const WORKING_SIZE = 512;
const PAPER = "#ffffff";

export class SketchCanvas {
  tool: Tool = "brush";
  layer: Layer = "sketch";
  colour = "#1f2937";
  /** Brush diameter in working pixels (a 512 px wide picture). */
  brushSize = 12;
  /** Called after anything changes the pixels or the undo history, e.g. to refresh the toolbar. */
  onChange: () => void = () => undefined;
  /**
   * Called as a stroke on the sketch layer begins; what it returns (e.g. turning back a switch it turned on) runs when
   * that stroke is undone, so the page's reaction to drawing is undone with the drawing.
   */
  onSketchStroke: () => (() => void) | undefined = () => undefined;

  private width: number;
  private height: number;
  private readonly picture: HTMLCanvasElement;
  private readonly strokes: HTMLCanvasElement;
  private readonly mask: MaskLayer;
  private readonly cursor: HTMLElement;
  private readonly history = new UndoStack();
  private last: { x: number; y: number } | null = null;
  private drawing: number | null = null;

  constructor(
    private readonly stage: HTMLElement,
    width: number,
    height: number,
  ) {
    this.width = width;
    this.height = height;
    const [w, h] = workingSize(width, height);
    this.picture = layerCanvas("layer layer-picture", w, h);
    this.strokes = layerCanvas("layer layer-strokes", w, h);
    this.mask = new MaskLayer(w, h);
    this.cursor = document.createElement("div");
    this.cursor.className = "brush-cursor";
    this.cursor.hidden = true;
    this.fillPaper();
    stage.append(this.picture, this.strokes, this.mask.canvas, this.cursor);
    this.fitStage();
    this.listen();
  }

  get canUndo(): boolean {
    return this.history.canUndo;
  }

  /** The picture plus strokes at the generation size, as the init image. */
  sketchDataUrl(): string {
    const out = layerCanvas("", this.width, this.height);
    const ctx = context(out);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.picture, 0, 0, this.width, this.height);
    ctx.drawImage(this.strokes, 0, 0, this.width, this.height);
    return out.toDataURL("image/png");
  }

  maskIsEmpty(): boolean {
    return this.mask.isEmpty();
  }

  /** The mask at the generation size, or null when nothing is masked (then the job is img2img, not inpaint). */
  maskDataUrl(): string | null {
    return this.mask.isEmpty() ? null : this.mask.toDataUrl(this.width, this.height);
  }

  /**
   * Follows a change of the generation size. The drawing is stretched to the new shape rather than cropped, so
   * nothing the user drew disappears; undo snapshots no longer fit and are dropped.
   */
  resize(width: number, height: number): void {
    if (width === this.width && height === this.height) return;
    this.width = width;
    this.height = height;
    const [w, h] = workingSize(width, height);
    for (const c of [this.picture, this.strokes, this.mask.canvas]) resample(c, w, h);
    this.history.clear();
    this.fitStage();
    this.onChange();
  }

  undo(): void {
    if (this.history.undo()) this.onChange();
  }

  /** Clears the active layer: the mask, or the whole sketch (picture and strokes) back to white paper. */
  clear(): void {
    if (this.layer === "mask") {
      this.history.record(this.mask.canvas);
      clearCanvas(this.mask.canvas);
    } else {
      this.history.record(this.picture, this.strokes);
      clearCanvas(this.strokes);
      this.fillPaper();
    }
    this.onChange();
  }

  invertMask(): void {
    this.history.record(this.mask.canvas);
    this.mask.invert();
    this.onChange();
  }

  /** Puts an image under the strokes, covering the canvas (cropping what does not fit the generation shape). */
  async loadImage(source: Blob): Promise<void> {
    const bitmap = await createImageBitmap(source);
    try {
      this.history.record(this.picture, this.strokes, this.mask.canvas);
      const { width: w, height: h } = this.picture;
      const scale = Math.max(w / bitmap.width, h / bitmap.height);
      const dw = bitmap.width * scale;
      const dh = bitmap.height * scale;
      this.fillPaper();
      const ctx = context(this.picture);
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(bitmap, (w - dw) / 2, (h - dh) / 2, dw, dh);
      clearCanvas(this.strokes);
      clearCanvas(this.mask.canvas);
    } finally {
      bitmap.close();
    }
    this.onChange();
  }

  /** The layers at their working resolution, as PNG, to be kept and given back to `restore`. */
  async save(): Promise<SavedSketch> {
    const [picture, strokes, mask] = await Promise.all([this.picture, this.strokes, this.mask.canvas].map(pngBlob));
    return { picture: picture!, strokes: strokes!, mask: mask! };
  }

  /** Puts saved layers back, stretched to the current shape as `resize` does; not undoable (it is the start). */
  async restore(saved: SavedSketch): Promise<void> {
    const pairs = [
      [this.picture, saved.picture],
      [this.strokes, saved.strokes],
      [this.mask.canvas, saved.mask],
    ] as const;
    const bitmaps = await Promise.all(pairs.map(([, blob]) => createImageBitmap(blob)));
    pairs.forEach(([layer], i) => {
      const bitmap = bitmaps[i]!;
      clearCanvas(layer);
      const ctx = context(layer);
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(bitmap, 0, 0, layer.width, layer.height);
      bitmap.close();
    });
    this.history.clear();
    this.onChange();
  }

  /** Sets the stage's aspect ratio so CSS can size it to the column while the layers keep their pixels. */
  private fitStage(): void {
    this.stage.style.aspectRatio = `${this.width} / ${this.height}`;
    this.stage.style.setProperty("--aspect", String(this.width / this.height));
  }

  private fillPaper(): void {
    const ctx = context(this.picture);
    ctx.save();
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, this.picture.width, this.picture.height);
    ctx.restore();
  }

  private target(): HTMLCanvasElement {
    return this.layer === "mask" ? this.mask.canvas : this.strokes;
  }

  private listen(): void {
    const el = this.stage;
    el.addEventListener("pointerdown", (e) => {
      // Only the primary button draws; a right-click or a second finger should not leave marks.
      if (e.button !== 0 || this.drawing !== null) return;
      e.preventDefault();
      el.setPointerCapture(e.pointerId);
      this.drawing = e.pointerId;
      this.history.record(this.target());
      if (this.layer === "sketch") {
        const revert = this.onSketchStroke();
        if (revert) this.history.alsoRevert(revert);
      }
      const p = this.point(e);
      this.last = p;
      this.segment(p, p);
      this.onChange();
    });
    el.addEventListener("pointermove", (e) => {
      this.moveCursor(e);
      if (e.pointerId !== this.drawing || !this.last) return;
      // Coalesced events recover the points a fast stroke moved through between frames.
      const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
      for (const ev of events.length > 0 ? events : [e]) {
        const p = this.point(ev);
        this.segment(this.last, p);
        this.last = p;
      }
    });
    const end = (e: PointerEvent) => {
      if (e.pointerId !== this.drawing) return;
      this.drawing = null;
      this.last = null;
      this.onChange();
    };
    el.addEventListener("pointerup", end);
    el.addEventListener("pointercancel", end);
    el.addEventListener("pointerleave", () => (this.cursor.hidden = true));
  }

  private segment(a: { x: number; y: number }, b: { x: number; y: number }): void {
    const canvas = this.target();
    const ctx = context(canvas);
    ctx.save();
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = this.layer === "mask" ? this.mask.paint : this.colour;
    ctx.lineWidth = this.brushSize * (Math.max(canvas.width, canvas.height) / WORKING_SIZE);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    // A zero-length line draws nothing, so a single tap is nudged into a dot.
    ctx.lineTo(b.x + (a.x === b.x && a.y === b.y ? 0.01 : 0), b.y);
    ctx.stroke();
    ctx.restore();
  }

  /** Pointer position in layer pixels. */
  private point(e: PointerEvent): { x: number; y: number } {
    const r = this.stage.getBoundingClientRect();
    return {
      x: ((e.clientX - r.left) / r.width) * this.strokes.width,
      y: ((e.clientY - r.top) / r.height) * this.strokes.height,
    };
  }

  /** An outline of the brush under a mouse or pen; touch has no hover, and a finger hides it anyway. */
  private moveCursor(e: PointerEvent): void {
    if (e.pointerType === "touch") return;
    const r = this.stage.getBoundingClientRect();
    const c = this.strokes;
    const size = this.brushSize * (Math.max(c.width, c.height) / WORKING_SIZE) * (r.width / c.width);
    this.cursor.hidden = false;
    this.cursor.style.width = this.cursor.style.height = `${size}px`;
    this.cursor.style.transform = `translate(${e.clientX - r.left - size / 2}px, ${e.clientY - r.top - size / 2}px)`;
  }
}

function workingSize(width: number, height: number): [number, number] {
  const scale = Math.max(1, WORKING_SIZE / Math.max(width, height));
  return [Math.round(width * scale), Math.round(height * scale)];
}

function layerCanvas(className: string, width: number, height: number): HTMLCanvasElement {
  const c = document.createElement("canvas");
  c.className = className;
  c.width = width;
  c.height = height;
  return c;
}

function pngBlob(c: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) =>
    c.toBlob((b) => (b ? resolve(b) : reject(new Error("the canvas could not be saved as PNG"))), "image/png"),
  );
}

function clearCanvas(c: HTMLCanvasElement): void {
  context(c).clearRect(0, 0, c.width, c.height);
}

function resample(c: HTMLCanvasElement, width: number, height: number): void {
  const copy = layerCanvas("", c.width, c.height);
  context(copy).drawImage(c, 0, 0);
  c.width = width;
  c.height = height;
  const ctx = context(c);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(copy, 0, 0, width, height);
}
