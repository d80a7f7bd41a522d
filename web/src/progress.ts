/**
 * The result panel while a job runs: queue position, a progress bar with an estimate of the time left, the
 * step previews as they arrive, and at the end the finished images.
 */
import type { JobStatus } from "./api-client.js";
import { PixelScaling } from "./pixel-scaling.js";

export type ProgressState = "idle" | "queued" | "running" | "done" | "failed" | "cancelled";

export interface FinishedImage {
  src: string;
  url: string;
  /** As the API sends it: a number, or a string beyond 2^53 - 1. */
  seed: number | string;
  alt: string;
}

export interface ProgressElements {
  frame: HTMLElement;
  image: HTMLImageElement;
  empty: HTMLElement;
  progress: HTMLElement;
  bar: HTMLElement;
  status: HTMLElement;
  cancel: HTMLButtonElement;
  thumbs: HTMLElement;
  actions: HTMLElement;
  download: HTMLAnchorElement;
}

export class ProgressView {
  /** When this page saw the job start; null for a job picked up after a reload, whose start it did not see. */
  private started: number | null = 0;
  /**
   * The first step this page saw and when: the time left is estimated from the pace of the steps seen since, never
   * from steps that ran before the page was looking (a reload mid-job replays step k at once).
   */
  private paceFrom: { done: number; at: number } | null = null;
  private previews = 0;
  private selected: FinishedImage | null = null;

  constructor(private readonly el: ProgressElements) {
    new PixelScaling().watch(el.image);
  }

  get current(): FinishedImage | null {
    return this.selected;
  }

  get busy(): boolean {
    const s = this.el.frame.dataset.state;
    return s === "queued" || s === "running";
  }

  /** A job this page is sending. */
  start(): void {
    this.reset();
    this.started = performance.now();
    this.setState("queued", "Sending…");
  }

  /** A job already on the server (found after a reload): shown as it stands, queued or at its step. */
  resume(job: Pick<JobStatus, "state" | "position" | "progress">): void {
    this.reset();
    this.started = null;
    if (job.state === "queued") this.queued(job.position ?? 0);
    else if (job.progress && job.progress.steps > 0) this.step(job.progress.step, job.progress.steps, 0, 1);
    else this.setState("running", "Running…");
  }

  private reset(): void {
    this.previews = 0;
    this.paceFrom = null;
    delete this.el.frame.dataset.previewWithheld;
    this.selected = null;
    this.el.thumbs.replaceChildren();
    this.el.actions.hidden = true;
    this.setBar(0);
    this.el.progress.hidden = false;
    this.el.cancel.hidden = false;
    this.el.cancel.disabled = false;
  }

  queued(position: number): void {
    this.setState(
      "queued",
      position === 0 ? "Starting…" : `Waiting in the queue: ${position} ${position === 1 ? "job" : "jobs"} ahead`,
    );
  }

  running(): void {
    // A picked-up job is already shown at its step; its stream's replayed "running" must not undo that.
    if (this.el.frame.dataset.state === "running") return;
    if (this.started !== null) {
      this.started = performance.now();
      this.paceFrom = { done: 0, at: this.started };
    }
    this.setState("running", "Preparing…");
  }

  /**
   * One finished sampler step; batches count as one long run so the bar never jumps back. `withheld` says why
   * the step has no preview ("safety": the server's safety checker flagged this job).
   */
  step(step: number, steps: number, batch: number, batches: number, preview?: string, withheld?: string): void {
    if (this.el.frame.dataset.state !== "running") this.running();
    const total = Math.max(1, steps * batches);
    const done = batch * steps + step;
    this.setBar(done / total);
    const now = performance.now();
    this.paceFrom ??= { done, at: now };
    const seen = done - this.paceFrom.done;
    const left = seen > 0 ? ((now - this.paceFrom.at) / 1000 / seen) * (total - done) : NaN;
    const batchText = batches > 1 ? ` · batch ${batch + 1} of ${batches}` : "";
    const eta = Number.isFinite(left) && done < total ? ` · about ${formatSeconds(left)} left` : "";
    // Once withheld, no later preview of the job is shown (the server stops after a hit): the note stays.
    if (withheld) this.el.frame.dataset.previewWithheld = withheld;
    const hidden =
      this.el.frame.dataset.previewWithheld === "safety" ? " · preview withheld by the safety checker" : "";
    this.setState("running", `Step ${step} of ${steps}${batchText}${eta}${hidden}`);
    this.el.frame.dataset.step = String(step);
    this.el.frame.dataset.steps = String(steps);
    if (preview) {
      this.previews++;
      this.el.frame.dataset.previews = String(this.previews);
      this.show(preview, "Preview of the image being generated");
      this.el.image.classList.add("is-preview");
    } else if (withheld) {
      // A preview shown before the checker flagged the job comes down too.
      if (this.el.image.classList.contains("is-preview")) {
        this.el.image.hidden = true;
        this.el.image.removeAttribute("src");
        this.el.empty.hidden = false;
      }
    }
  }

  done(images: FinishedImage[]): void {
    this.setBar(1);
    const took = this.started === null ? "" : ` in ${formatSeconds((performance.now() - this.started) / 1000)}`;
    this.setState(
      "done",
      images.length === 0 ? "Done, but no image came back" : `Done${took} · seed ${images[0]!.seed}`,
    );
    this.el.cancel.hidden = true;
    this.el.thumbs.replaceChildren(
      ...(images.length > 1
        ? images.map((img, i) => {
            const b = document.createElement("button");
            b.type = "button";
            b.className = "thumb-button";
            b.setAttribute("aria-label", `Show image ${i + 1} (seed ${img.seed})`);
            const t = new Image();
            t.src = img.src;
            t.alt = "";
            b.append(t);
            b.addEventListener("click", () => this.select(img));
            return b;
          })
        : []),
    );
    if (images[0]) this.select(images[0]);
  }

  failed(message: string): void {
    this.end("failed", `Failed: ${message}`);
  }

  cancelled(message: string): void {
    this.end("cancelled", message ? `Cancelled: ${message}` : "Cancelled");
  }

  private select(img: FinishedImage): void {
    this.selected = img;
    this.show(img.src, img.alt);
    this.el.image.classList.remove("is-preview");
    this.el.actions.hidden = false;
    this.el.download.href = img.src;
    this.el.download.download = `diffuse-${img.seed}.png`;
    for (const b of Array.from(this.el.thumbs.children))
      b.classList.toggle("selected", b.querySelector("img")?.src === img.src);
  }

  private end(state: ProgressState, text: string): void {
    this.el.cancel.hidden = true;
    this.el.progress.hidden = true;
    this.setState(state, text);
  }

  private show(src: string, alt: string): void {
    this.el.image.src = src;
    this.el.image.alt = alt;
    this.el.image.hidden = false;
    this.el.empty.hidden = true;
  }

  private setState(state: ProgressState, text: string): void {
    this.el.frame.dataset.state = state;
    this.el.status.textContent = text;
  }

  private setBar(fraction: number): void {
    const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
    this.el.bar.setAttribute("aria-valuenow", String(pct));
    this.el.bar.style.setProperty("--progress", `${pct}%`);
  }
}

function formatSeconds(s: number): string {
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
