/**
 * The sketch canvas as a ControlNet scribble: the strokes keep the picture's composition while the prompt decides the
 * rest. Shown when the server serves ControlNets (GET /controlnet/model_list, A1111's ControlNet extension's route);
 * on by default when one of them is a scribble ControlNet (its name says so, as published ones and the embedded
 * model's do). It shows the map the ControlNet will see (POST /controlnet/detect with the scribble preprocessor) and
 * the unit's strength and start/end, and hands the job its unit.
 */
import type { ApiClient, ControlNetUnitRequest } from "./api-client.js";
import { h } from "./dom.js";

/** How long the canvas must rest before the map preview is made again. */
const PREVIEW_DELAY_MS = 350;
/** A pixel this light on every channel is paper: a canvas of nothing else has no strokes to follow. */
const PAPER_LEVEL = 245;

interface Slider {
  range: HTMLInputElement;
  box: HTMLInputElement;
  label: string;
}

export class ScribbleControl {
  /** Called when the switch or the model changes (the page's mode badge shows whether the scribble is in use). */
  onChange: () => void = () => undefined;

  private readonly enabled: HTMLInputElement;
  private readonly model: HTMLSelectElement;
  private readonly weight: Slider;
  private readonly start: Slider;
  private readonly end: Slider;
  private readonly map: HTMLImageElement;
  private readonly mapNote: HTMLElement;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The newest preview request; an older one's answer is dropped. */
  private previewSeq = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly api: ApiClient,
    /** The canvas as a PNG data URL at the generation size. */
    private readonly sketch: () => string,
  ) {
    this.enabled = h("input", { type: "checkbox", id: "scribble-enabled", role: "switch" });
    this.model = h("select", { id: "scribble-model", "aria-label": "ControlNet model" });
    this.weight = slider("scribble-weight", "Strength", 0, 2, 0.05, 1);
    this.start = slider("scribble-start", "Start", 0, 1, 0.05, 0);
    this.end = slider("scribble-end", "End", 0, 1, 0.05, 1);
    this.map = h("img", {
      id: "scribble-map",
      alt: "The control map the ControlNet follows: your strokes in white on black",
      hidden: true,
    });
    this.mapNote = h(
      "p",
      { className: "field-hint", id: "scribble-map-note" },
      "Draw on the canvas: the map the ControlNet follows appears here.",
    );
    root.hidden = true;
    root.replaceChildren(
      h(
        "div",
        { className: "panel-head" },
        h("h3", { className: "scribble-title" }, "ControlNet"),
        h(
          "label",
          { className: "switch" },
          this.enabled,
          h("span", { className: "switch-track", "aria-hidden": "true" }),
          h("span", {}, "Use as ControlNet scribble"),
        ),
      ),
      h("p", { className: "field-hint" }, "The strokes keep the picture's layout while the prompt decides the rest."),
      h("div", { className: "field" }, h("label", { for: "scribble-model" }, "Model"), this.model),
      field(this.weight, "How strongly the picture follows the strokes"),
      field(this.start, "From this fraction of the steps"),
      field(this.end, "Until this fraction of the steps"),
      h("div", { className: "scribble-map-frame" }, this.map, this.mapNote),
    );
    this.enabled.addEventListener("change", () => {
      this.root.classList.toggle("in-use", this.enabled.checked);
      this.onChange();
      this.sketchChanged();
    });
    this.model.addEventListener("change", () => this.onChange());
    // Start never after end: moving one past the other moves both.
    this.start.box.addEventListener("change", () =>
      this.set(this.end, Math.max(this.value(this.end), this.value(this.start))),
    );
    this.end.box.addEventListener("change", () =>
      this.set(this.start, Math.min(this.value(this.start), this.value(this.end))),
    );
  }

  /** Lists the served ControlNets; the panel stays hidden when there are none. */
  async load(): Promise<void> {
    const titles = await this.api.controlNets();
    const scribbles = titles.filter((t) => /scribble|sketch/i.test(t));
    this.model.replaceChildren(
      ...[...scribbles, ...titles.filter((t) => !scribbles.includes(t))].map((t) => h("option", { value: t }, t)),
    );
    this.root.hidden = titles.length === 0;
    this.enabled.checked = scribbles.length > 0;
    this.root.classList.toggle("in-use", this.enabled.checked);
    this.onChange();
    this.sketchChanged();
  }

  /** Whether Generate sends the canvas as a ControlNet unit (the switch is on and a model is served). */
  get active(): boolean {
    return !this.root.hidden && this.enabled.checked && this.model.value !== "";
  }

  /** A history job's unit ("use these settings"): its model when served, its strength and start/end; none turns it off. */
  applySettings(
    unit: { model: string; weight?: number; guidance_start?: number; guidance_end?: number } | undefined,
  ): void {
    if (this.root.hidden) return;
    this.enabled.checked = unit !== undefined;
    if (unit) {
      if (Array.from(this.model.options).some((o) => o.value === unit.model)) this.model.value = unit.model;
      this.set(this.weight, unit.weight ?? 1);
      this.set(this.start, unit.guidance_start ?? 0);
      this.set(this.end, unit.guidance_end ?? 1);
    }
    this.root.classList.toggle("in-use", this.enabled.checked);
    this.onChange();
  }

  /** The canvas changed: the map preview is made again once it rests. */
  sketchChanged(): void {
    clearTimeout(this.timer);
    if (!this.active) return;
    this.timer = setTimeout(() => void this.refreshMap(), PREVIEW_DELAY_MS);
  }

  /** The job's unit, or undefined when the scribble is off or the canvas holds no strokes (nothing to follow). */
  async unit(): Promise<ControlNetUnitRequest | undefined> {
    if (!this.active) return undefined;
    const image = this.sketch();
    if (await isBlank(image)) return undefined;
    return {
      image,
      model: this.model.value,
      module: "scribble",
      weight: this.value(this.weight),
      guidance_start: this.value(this.start),
      guidance_end: this.value(this.end),
    };
  }

  private async refreshMap(): Promise<void> {
    const seq = ++this.previewSeq;
    const image = this.sketch();
    try {
      if (await isBlank(image)) {
        this.showMap(seq, undefined, "Draw on the canvas: the map the ControlNet follows appears here.");
        return;
      }
      const { width, height } = await imageSize(image);
      // The shorter side at its own size, so the map is the one the generation sees (the route's range is 64-2048).
      const res = Math.min(2048, Math.max(64, Math.min(width, height)));
      const map = await this.api.detect({
        controlnet_module: "scribble",
        controlnet_input_images: [image],
        controlnet_processor_res: res,
      });
      this.showMap(seq, `data:image/png;base64,${map}`, "The map the ControlNet follows");
    } catch (e) {
      this.showMap(seq, undefined, `No map preview: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private showMap(seq: number, src: string | undefined, note: string): void {
    if (seq !== this.previewSeq) return;
    if (src) this.map.src = src;
    this.map.hidden = src === undefined;
    this.mapNote.textContent = note;
  }

  private value(s: Slider): number {
    return Number(s.box.value);
  }

  private set(s: Slider, v: number): void {
    s.box.value = s.range.value = String(v);
  }
}

/** A slider paired with a number box (the box holds the value). */
function slider(id: string, label: string, min: number, max: number, step: number, value: number): Slider {
  const attrs = { min, max, step, value };
  const range = h("input", { type: "range", id: `${id}-range`, "aria-label": label, ...attrs });
  const box = h("input", { type: "number", id, inputmode: "decimal", ...attrs });
  range.addEventListener("input", () => {
    box.value = range.value;
    box.dispatchEvent(new Event("change"));
  });
  box.addEventListener("input", () => {
    if (box.value !== "") range.value = box.value;
  });
  return { range, box, label };
}

function field(s: Slider, hint: string): HTMLElement {
  return h(
    "div",
    { className: "field slider-field" },
    h("label", { for: s.box.id }, s.label),
    s.range,
    s.box,
    h("p", { className: "field-hint" }, hint),
  );
}

async function decode(dataUrl: string): Promise<ImageBitmap> {
  const img = new Image();
  img.src = dataUrl;
  await img.decode();
  return createImageBitmap(img);
}

async function imageSize(dataUrl: string): Promise<{ width: number; height: number }> {
  const bitmap = await decode(dataUrl);
  const size = { width: bitmap.width, height: bitmap.height };
  bitmap.close();
  return size;
}

/** Whether an image is all paper (nothing drawn or placed on it). */
async function isBlank(dataUrl: string): Promise<boolean> {
  const bitmap = await decode(dataUrl);
  try {
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
    ctx.drawImage(bitmap, 0, 0);
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < data.length; i += 4)
      if (data[i]! < PAPER_LEVEL || data[i + 1]! < PAPER_LEVEL || data[i + 2]! < PAPER_LEVEL) return false;
    return true;
  } finally {
    bitmap.close();
  }
}
