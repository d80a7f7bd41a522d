/**
 * Undo for the drawing layers: a snapshot of each layer a stroke is about to change, taken before it changes.
 * Whole-layer snapshots cost memory (about 1 MB per 512x512 layer) but make every operation undoable the same
 * way, strokes, clears and uploads alike; the depth limit bounds the cost.
 */
interface Snapshot {
  canvas: HTMLCanvasElement;
  data: ImageData;
}

/** One undoable step: the layers' pixels before it, and what else it changed outside the canvas (a switch it set). */
interface Step {
  snapshots: Snapshot[];
  reverts: (() => void)[];
}

export class UndoStack {
  private readonly entries: Step[] = [];

  constructor(private readonly depth = 30) {}

  get canUndo(): boolean {
    return this.entries.length > 0;
  }

  /** Records the current pixels of `canvases` as one step. */
  record(...canvases: HTMLCanvasElement[]): void {
    this.entries.push({
      snapshots: canvases.map((canvas) => ({
        canvas,
        data: context(canvas).getImageData(0, 0, canvas.width, canvas.height),
      })),
      reverts: [],
    });
    if (this.entries.length > this.depth) this.entries.shift();
  }

  /** Adds to the last recorded step something to put back on undo besides the pixels; nothing when there is none. */
  alsoRevert(revert: () => void): void {
    this.entries.at(-1)?.reverts.push(revert);
  }

  /** Puts the last recorded step back; false when there is nothing to undo. */
  undo(): boolean {
    const step = this.entries.pop();
    if (!step) return false;
    for (const { canvas, data } of step.snapshots) {
      // A resize since the snapshot would make it land misplaced; resizing clears the stack, so this is a guard.
      if (canvas.width === data.width && canvas.height === data.height) context(canvas).putImageData(data, 0, 0);
    }
    for (const revert of step.reverts) revert();
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
