/**
 * Connects the drawing tools (layer, brush or eraser, size, colour, undo, clear, upload) to the canvas, with
 * keyboard shortcuts familiar from drawing programs.
 */
import type { Layer, SketchCanvas, Tool } from "./canvas.js";
import { byId, h } from "./dom.js";

/** Eleven slots fit one row at phone width: ten paints and a custom colour. */
const COLOURS: [string, string][] = [
  ["#1f2937", "Ink"],
  ["#ffffff", "White"],
  ["#9ca3af", "Grey"],
  ["#ef4444", "Red"],
  ["#f59e0b", "Orange"],
  ["#facc15", "Yellow"],
  ["#22c55e", "Green"],
  ["#3b82f6", "Blue"],
  ["#8b5cf6", "Violet"],
  ["#92400e", "Brown"],
];

export class CanvasToolbar {
  /** Called with an image the user gave (file picker, drop, paste); the page decides what follows. */
  onImage: (file: Blob) => void = () => undefined;
  /** Called when the user starts painting a mask, which only means something for inpainting. */
  onMaskPainted: () => void = () => undefined;

  constructor(
    private readonly canvas: SketchCanvas,
    stage: HTMLElement,
  ) {
    this.buildPalette();
    for (const input of radios("layer")) input.addEventListener("change", () => this.setLayer(input.value as Layer));
    for (const input of radios("tool")) input.addEventListener("change", () => (canvas.tool = input.value as Tool));

    const size = byId<HTMLInputElement>("brush-size");
    size.addEventListener("input", () => this.setSize(Number(size.value)));
    this.setSize(Number(size.value));

    byId("undo").addEventListener("click", () => canvas.undo());
    byId("clear").addEventListener("click", () => canvas.clear());
    byId("invert-mask").addEventListener("click", () => canvas.invertMask());

    const upload = byId<HTMLInputElement>("upload");
    upload.addEventListener("change", () => {
      const file = upload.files?.[0];
      if (file) this.onImage(file);
      upload.value = "";
    });
    stage.addEventListener("dragover", (e) => {
      e.preventDefault();
      stage.classList.add("drop-target");
    });
    stage.addEventListener("dragleave", () => stage.classList.remove("drop-target"));
    stage.addEventListener("drop", (e) => {
      e.preventDefault();
      stage.classList.remove("drop-target");
      const file = Array.from(e.dataTransfer?.files ?? []).find((f) => f.type.startsWith("image/"));
      if (file) this.onImage(file);
    });
    document.addEventListener("paste", (e) => {
      if (isTyping(e.target)) return;
      const file = Array.from(e.clipboardData?.files ?? []).find((f) => f.type.startsWith("image/"));
      if (file) this.onImage(file);
    });
    stage.addEventListener("pointerdown", () => {
      if (canvas.layer === "mask") this.onMaskPainted();
    });
    document.addEventListener("keydown", (e) => this.shortcut(e));

    const refresh = canvas.onChange;
    canvas.onChange = () => {
      byId<HTMLButtonElement>("undo").disabled = !canvas.canUndo;
      refresh();
    };
  }

  private setLayer(layer: Layer): void {
    this.canvas.layer = layer;
    const stage = byId("stage");
    stage.dataset.layer = layer;
    byId("invert-mask").hidden = layer !== "mask";
    // The mask has one paint; offering colours there would suggest they mean something.
    byId("palette").classList.toggle("disabled", layer === "mask");
    for (const input of Array.from(byId("palette").querySelectorAll("input"))) input.disabled = layer === "mask";
  }

  private setSize(size: number): void {
    this.canvas.brushSize = size;
    const dot = document.querySelector<HTMLElement>(".brush-dot");
    dot?.style.setProperty("--dot", `${Math.max(4, Math.min(22, size / 3))}px`);
  }

  private buildPalette(): void {
    const palette = byId("palette");
    const swatches = COLOURS.map(([value, name], i) => {
      const input = h("input", { type: "radio", name: "colour", value, "aria-label": name, checked: i === 0 });
      input.addEventListener("change", () => (this.canvas.colour = value));
      return h("label", { className: "swatch", title: name, style: `--swatch: ${value}` }, input);
    });
    const custom = h("input", {
      type: "color",
      value: "#0d9488",
      "aria-label": "Custom colour",
      title: "Custom colour",
    });
    custom.addEventListener("input", () => {
      this.canvas.colour = custom.value;
      for (const r of radios("colour")) r.checked = false;
    });
    palette.replaceChildren(...swatches, h("label", { className: "swatch custom" }, custom));
    this.canvas.colour = COLOURS[0]![0];
  }

  private shortcut(e: KeyboardEvent): void {
    if (isTyping(e.target) || e.altKey) return;
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key.toLowerCase() === "z" && !e.shiftKey) {
      e.preventDefault();
      this.canvas.undo();
      return;
    }
    if (mod) return;
    const key = e.key.toLowerCase();
    if (key === "b" || key === "e") pick("tool", key === "b" ? "brush" : "eraser");
    else if (key === "m") pick("layer", this.canvas.layer === "mask" ? "sketch" : "mask");
    else if (key === "[" || key === "]") {
      const size = byId<HTMLInputElement>("brush-size");
      size.value = String(Number(size.value) + (key === "]" ? 4 : -4));
      size.dispatchEvent(new Event("input"));
    }
  }
}

function radios(name: string): HTMLInputElement[] {
  return Array.from(document.querySelectorAll<HTMLInputElement>(`input[type=radio][name=${name}]`));
}

/** Checks a radio as a click would, so its change listener runs. */
function pick(name: string, value: string): void {
  const input = radios(name).find((r) => r.value === value);
  if (input && !input.checked) {
    input.checked = true;
    input.dispatchEvent(new Event("change"));
  }
}

/** Shortcuts must not steal keys from a text field. */
function isTyping(target: EventTarget | null): boolean {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) &&
    !(target instanceof HTMLInputElement && ["radio", "checkbox", "range", "button"].includes(target.type))
  );
}
