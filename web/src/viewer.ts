/** A large view of one history image with everything that made it, and the same actions as its card. */
import type { ApiClient, ImageRef, JobStatus } from "./api-client.js";
import { byId, h } from "./dom.js";
import type { GalleryActions } from "./gallery.js";
import { paramRows, type SamplerLabel } from "./job-format.js";
import { PixelScaling } from "./pixel-scaling.js";

export class Viewer {
  samplerLabel: SamplerLabel = (name) => name;
  private shown: { job: JobStatus; image: ImageRef } | null = null;

  constructor(
    private readonly dialog: HTMLDialogElement,
    private readonly api: ApiClient,
    actions: Pick<GalleryActions, "useSettings" | "sendToCanvas">,
  ) {
    new PixelScaling().watch(byId<HTMLImageElement>("viewer-image"));
    byId("viewer-close").addEventListener("click", () => dialog.close());
    // A click on the backdrop lands on the dialog itself; closing there is what people expect of a lightbox.
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close();
    });
    byId("viewer-use").addEventListener("click", () => {
      if (this.shown) actions.useSettings(this.shown.job, this.shown.image);
      dialog.close();
    });
    byId("viewer-canvas").addEventListener("click", () => {
      if (this.shown) actions.sendToCanvas(this.shown.job, this.shown.image);
      dialog.close();
    });
  }

  async open(job: JobStatus, image: ImageRef): Promise<void> {
    this.shown = { job, image };
    const src = await this.api.imageSrc(image.url);
    const img = byId<HTMLImageElement>("viewer-image");
    img.src = src;
    img.alt = job.params.prompt;
    byId("viewer-prompt").textContent = job.params.prompt || "(no prompt)";
    byId("viewer-params").replaceChildren(
      ...paramRows(job.params, image.seed, this.samplerLabel).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    );
    byId("viewer-infotext").textContent = image.infotext;
    const download = byId<HTMLAnchorElement>("viewer-download");
    download.href = src;
    download.download = `diffuse-${image.seed}.png`;
    if (!this.dialog.open) this.dialog.showModal();
  }
}
