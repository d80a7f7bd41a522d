import { rmSync } from "node:fs";
import type { StepPreview } from "../index.js";
import { stageFiles } from "./output-files.js";

/**
 * `--preview FILE`: the image as it forms, written after each step from the step's `preview` (so it shows only what
 * the safety checker and policy let a final image show; a withheld preview removes the file). Each write replaces
 * the file whole (staged, then renamed). When steps come faster than previews are made, the latest step wins and
 * the ones in between are skipped, so previews never hold the generation back.
 */
export class PreviewFile {
  private latest: (() => Promise<StepPreview>) | undefined;
  private running: Promise<void> | undefined;
  private failure: Error | undefined;

  constructor(private readonly path: string) {}

  /** A step's preview, to write when the writer is free. */
  show(preview: () => Promise<StepPreview>): void {
    this.latest = preview;
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Waits for the last preview asked for to be written; rethrows a failed write. */
  async done(): Promise<void> {
    while (this.running) await this.running;
    if (this.failure) throw this.failure;
  }

  private async drain(): Promise<void> {
    while (this.latest) {
      const next = this.latest;
      this.latest = undefined;
      try {
        const p = await next();
        if (p.png) stageFiles([{ path: this.path, bytes: p.png }]).commit();
        else rmSync(this.path, { force: true });
      } catch (e) {
        this.failure ??= e as Error;
      }
    }
  }
}
