/**
 * Undo for the drawing layers: a snapshot of each layer a stroke is about to change, taken before it changes.
 * Whole-layer snapshots cost memory (about 1 MB per 512x512 layer) but make every operation undoable the same
 * way, strokes, clears and uploads alike; the depth limit bounds the cost.
 */
interface Snapshot {
  canvas: HTMLCanvasElement;
  data: ImageData;
}

export class UndoStack {
  private readonly entries: Snapshot[][] = [];

  constructor(private readonly depth = 30) {}

  get canUndo(): boolean {
    return this.entries.length > 0;
  }

  /** Records the current pixels of `canvases` as one step. */
  record(...canvases: HTMLCanvasElement[]): void {
    this.entries.push(
      canvases.map((canvas) => ({ canvas, data: context(canvas).getImageData(0, 0, canvas.width, canvas.height) })),
    );
    if (this.entries.length > this.depth) this.entries.shift();
  }

  /** Puts the last recorded step back; false when there is nothing to undo. */
  undo(): boolean {
    const step = this.entries.pop();
    if (!step) return false;
    for (const { canvas, data } of step) {
      // A resize since the snapshot would make it land misplaced; resizing clears the stack, so this is a guard.
      if (canvas.width === data.width && canvas.height === data.height) context(canvas).putImageData(data, 0, 0);
    }
    return true;
  }

  clear(): void {
    this.entries.length = 0;
  }
}

/** The 2D context, asking for fast readback because undo and mask export read pixels often. */
export function context(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("this browser cannot draw on a canvas (no 2D context)");
  return ctx;
}
