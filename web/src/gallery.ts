/**
 * The history: every job the server remembers, newest first, one card per image. It is rebuilt from the
 * server's history rather than kept in the page, so it survives reloads and shows jobs from other clients too.
 */
import type { ApiClient, ImageRef, JobStatus } from "./api-client.js";
import { h } from "./dom.js";
import { ago, summary, type SamplerLabel } from "./job-format.js";
import { PixelScaling } from "./pixel-scaling.js";

export interface GalleryActions {
  open(job: JobStatus, image: ImageRef): void;
  useSettings(job: JobStatus, image: ImageRef | undefined): void;
  sendToCanvas(job: JobStatus, image: ImageRef): void;
}

const EAGER = 12;

const STATE_TEXT: Record<JobStatus["state"], string> = {
  queued: "Queued",
  running: "Generating…",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export class Gallery {
  samplerLabel: SamplerLabel = (name) => name;
  private readonly scaling = new PixelScaling();

  constructor(
    private readonly list: HTMLUListElement,
    private readonly empty: HTMLElement,
    private readonly api: ApiClient,
    private readonly actions: GalleryActions,
  ) {}

  render(jobs: JobStatus[]): void {
    this.scaling.forgetAll();
    const cards = jobs.flatMap((job) =>
      job.images.length > 0 ? job.images.map((img) => this.imageCard(job, img)) : [this.stateCard(job)],
    );
    // The first rows are on screen at once; only the rest wait until scrolled to.
    cards.forEach((card, i) => card.querySelector("img")?.setAttribute("loading", i < EAGER ? "eager" : "lazy"));
    this.list.replaceChildren(...cards);
    this.empty.hidden = cards.length > 0;
  }

  private imageCard(job: JobStatus, image: ImageRef): HTMLLIElement {
    const prompt = job.params.prompt || "(no prompt)";
    const img = h("img", { alt: prompt, decoding: "async", width: job.params.width, height: job.params.height });
    this.scaling.watch(img);
    this.api.imageSrc(image.url).then(
      (src) => (img.src = src),
      () => img.classList.add("broken"),
    );
    const view = h("button", { type: "button", className: "card-thumb", "aria-label": `View image: ${prompt}` }, img);
    view.addEventListener("click", () => this.actions.open(job, image));
    const use = h("button", { type: "button", className: "button small" }, "Use these settings");
    use.addEventListener("click", () => this.actions.useSettings(job, image));
    const toCanvas = h("button", { type: "button", className: "button small ghost" }, "Send to canvas");
    toCanvas.addEventListener("click", () => this.actions.sendToCanvas(job, image));
    return h(
      "li",
      { className: "card", "data-job-id": job.id, "data-image-id": image.id, "data-state": job.state },
      view,
      h(
        "div",
        { className: "card-body" },
        h("p", { className: "card-prompt", title: prompt }, prompt),
        h("p", { className: "card-meta" }, summary(job.params, image.seed, this.samplerLabel)),
        h("p", { className: "card-time" }, h("time", { datetime: job.created_at }, ago(job.created_at))),
        h("div", { className: "card-actions" }, use, toCanvas),
      ),
    );
  }

  /** A job with no image (waiting, running, failed or cancelled): its state and, when it failed, why. */
  private stateCard(job: JobStatus): HTMLLIElement {
    const prompt = job.params.prompt || "(no prompt)";
    const use = h("button", { type: "button", className: "button small" }, "Use these settings");
    use.addEventListener("click", () => this.actions.useSettings(job, undefined));
    const detail =
      job.state === "queued" && job.position !== null
        ? ` · position ${job.position}`
        : job.error
          ? `: ${job.error}`
          : "";
    return h(
      "li",
      { className: "card card-placeholder", "data-job-id": job.id, "data-state": job.state },
      h("div", { className: "card-thumb placeholder", "aria-hidden": "true" }, h("span", {}, STATE_TEXT[job.state])),
      h(
        "div",
        { className: "card-body" },
        h("p", { className: "card-prompt", title: prompt }, prompt),
        h("p", { className: `card-meta state-${job.state}` }, `${STATE_TEXT[job.state]}${detail}`),
        h("p", { className: "card-time" }, h("time", { datetime: job.created_at }, ago(job.created_at))),
        h("div", { className: "card-actions" }, use),
      ),
    );
  }
}
