/**
 * The generation settings: reading them as typed values, filling them from a past job, keeping sliders and
 * number boxes in step, and remembering them across reloads (a prompt someone spent minutes on should not
 * vanish with an accidental refresh).
 */
import type { ModelInfo, SamplerInfo } from "./api-client.js";
import { h } from "./dom.js";
import { sizePresets } from "./size-presets.js";

export interface FormValues {
  prompt: string;
  negative_prompt: string;
  /** SDXL's second encoder's prompts; "" = the same as the prompt / negative prompt. */
  prompt_2: string;
  negative_prompt_2: string;
  sampler_name: string;
  steps: number;
  cfg_scale: number;
  /**
   * Decimal text, exact: seeds run to 2^64 - 1, past what a number holds (the box is a text box for the same
   * reason). "-1": random.
   */
  seed: string;
  width: number;
  height: number;
  batch_size: number;
  denoising_strength: number;
  use_sketch: boolean;
}

const STORAGE_KEY = "diffuse.params";
/** For a model whose folder has no prompt_examples.json: what to type, without suggesting a subject it may not draw. */
const NEUTRAL_PLACEHOLDERS = { prompt: "Describe the picture you want", negative: "What the picture should not show" };
/** PyTorch's seeds are unsigned 64-bit integers; -1 asks for a random one. */
const MAX_SEED = 2n ** 64n - 1n;
const RANDOM_SEED = -1n;

/** Limits as the server validates them, so the page corrects a value before a round trip rejects it. */
const LIMITS = {
  steps: { min: 1, max: 150, integer: true },
  cfg_scale: { min: 0, max: 30, integer: false },
  batch_size: { min: 1, max: 4, integer: true },
  denoising_strength: { min: 0.05, max: 1, integer: false },
} as const;

type NumericField = keyof typeof LIMITS;

/**
 * Sides the page offers: the server takes up to 2048 (MAX_SIDE in src/server/api-types.ts); below 64 no model draws
 * anything recognisable. Sizes are not corrected behind the user's back (a 100 silently becoming 104 is a surprise
 * found in the history): one the server would refuse is refused here, with the reason, before it is sent.
 */
const SIZE = { min: 64, max: 2048 } as const;

export class ParamsForm {
  /** Called when width or height settle on a new value, so the canvas can follow. */
  onSizeChange: (width: number, height: number) => void = () => undefined;
  /** Called on any change, e.g. to update the mode badge. */
  onChange: () => void = () => undefined;

  private lastSeed: string | null = null;

  constructor(private readonly form: HTMLFormElement) {
    this.pairSliders();
    this.restore();
    const onInput = (e: Event) => {
      if (e.target === this.input("width") || e.target === this.input("height")) this.showSizeProblem();
      this.changed();
    };
    const onCommit = (e: Event) => {
      const el = e.target;
      if (el instanceof HTMLInputElement && el.type === "number") this.normalise(el);
      if (el === this.input("seed")) this.normaliseSeed();
      if (el === this.input("width") || el === this.input("height")) this.showSizeProblem();
      // The canvas follows a size the server takes; a refused one waits for its fix.
      if ((el === this.input("width") || el === this.input("height")) && !this.sizeProblem())
        this.onSizeChange(this.values().width, this.values().height);
      this.changed();
    };
    this.form.addEventListener("input", onInput);
    this.form.addEventListener("change", onCommit);
    // Some controls (the strength box, the sketch switch) live outside the <form> element and join it with
    // form="params"; their events do not bubble through the form, so they get the same listeners directly.
    for (const el of Array.from(this.form.elements)) {
      if (el instanceof HTMLElement && !this.form.contains(el)) {
        el.addEventListener("input", onInput);
        el.addEventListener("change", onCommit);
      }
    }
    this.button("seed-random").addEventListener("click", () => this.set({ seed: "-1" }));
    this.button("seed-reuse").addEventListener("click", () => {
      if (this.lastSeed !== null) this.set({ seed: this.lastSeed });
    });
    this.button("size-swap").addEventListener("click", () => {
      const { width, height } = this.values();
      this.set({ width: height, height: width });
    });
  }

  values(): FormValues {
    return {
      prompt: this.text("prompt").value,
      negative_prompt: this.text("negative_prompt").value,
      prompt_2: this.text("prompt_2").value,
      negative_prompt_2: this.text("negative_prompt_2").value,
      sampler_name: this.select("sampler_name").value,
      steps: this.number("steps"),
      cfg_scale: this.number("cfg_scale"),
      seed: this.input("seed").value,
      width: this.number("width"),
      height: this.number("height"),
      batch_size: this.number("batch_size"),
      denoising_strength: this.number("denoising_strength"),
      use_sketch: this.input("use-sketch").checked,
    };
  }

  /** Fills in the given values; a change of size is passed on like a user's edit. */
  set(values: Partial<FormValues>): void {
    const before = this.values();
    for (const [key, value] of Object.entries(values) as [keyof FormValues, FormValues[keyof FormValues]][]) {
      if (value === undefined) continue;
      if (key === "use_sketch") this.input("use-sketch").checked = value as boolean;
      else if (key === "prompt" || key === "negative_prompt" || key === "prompt_2" || key === "negative_prompt_2")
        this.text(key).value = String(value);
      else if (key === "sampler_name" || key === "batch_size") this.setSelect(key, String(value));
      else if (key === "width" || key === "height") {
        this.input(key).value = String(value);
        this.showSizeProblem();
      } else if (key === "seed") {
        this.input("seed").value = String(value);
        this.normaliseSeed();
      } else {
        const el = this.input(key);
        el.value = String(value);
        this.normalise(el);
      }
    }
    const after = this.values();
    if ((after.width !== before.width || after.height !== before.height) && !this.sizeProblem())
      this.onSizeChange(after.width, after.height);
    this.changed();
  }

  /**
   * What is wrong with the size, in words that say how to fix it; null when the server will take it. Generate asks
   * before sending, so a bad size never makes a round trip (or a job that fails).
   */
  sizeProblem(): { field: "width" | "height"; message: string } | null {
    for (const field of ["width", "height"] as const) {
      const message = sideProblem(field === "width" ? "Width" : "Height", this.input(field).value);
      if (message) return { field, message };
    }
    return null;
  }

  /** Placeholders from the model's own example prompts, so they show what it can draw; neutral ones otherwise. */
  setPromptExamples(examples: ModelInfo["prompt_examples"]): void {
    this.text("prompt").placeholder = examples?.prompts[0] ?? NEUTRAL_PLACEHOLDERS.prompt;
    this.text("negative_prompt").placeholder = examples?.negative_prompt ?? NEUTRAL_PLACEHOLDERS.negative;
  }

  /** The model's native size, offered with its landscape and portrait shapes as one-click presets. */
  setNativeSize(native: number): void {
    this.element("size-presets").replaceChildren(
      ...sizePresets(native).map(({ width, height }) => {
        const b = h("button", { type: "button", className: "chip" }, `${width} × ${height}`);
        b.addEventListener("click", () => this.set({ width, height }));
        return b;
      }),
    );
  }

  setSamplers(samplers: SamplerInfo[], fallback: string): void {
    const select = this.select("sampler_name");
    const wanted = this.saved()?.sampler_name ?? fallback;
    select.replaceChildren(...samplers.map((s) => new Option(s.label, s.name)));
    this.setSelect("sampler_name", samplers.some((s) => s.name === wanted || s.label === wanted) ? wanted : fallback);
  }

  /**
   * Uses the model's native size, recommended guidance, steps and sampler (an LCM or Turbo model's few steps) where
   * the user has not chosen their own. One call, one look at what was saved: setting a field saves the whole form,
   * which would otherwise count as a choice. Call it after setSamplers, so the sampler has its options.
   */
  setModelDefaults(d: { size: number; cfgScale: number; steps: number; sampler: string }): void {
    const saved = this.saved();
    this.set({
      ...(saved?.width === undefined ? { width: d.size, height: d.size } : {}),
      ...(saved?.cfg_scale === undefined ? { cfg_scale: d.cfgScale } : {}),
      ...(saved?.steps === undefined ? { steps: d.steps } : {}),
      ...(saved?.sampler_name === undefined ? { sampler_name: d.sampler } : {}),
    });
  }

  /** The seed of the last finished image, for the reuse button (a string beyond 2^53 - 1, as the API sends it). */
  rememberSeed(seed: number | string): void {
    this.lastSeed = String(seed);
    const b = this.button("seed-reuse");
    b.disabled = false;
    b.title = `Reuse the last seed (${seed})`;
    b.setAttribute("aria-label", b.title);
  }

  private showSizeProblem(): void {
    const problem = this.sizeProblem();
    const error = this.element("size-error");
    error.textContent = problem?.message ?? "";
    error.hidden = !problem;
    for (const field of ["width", "height"] as const) {
      const bad = problem?.field === field;
      this.input(field).setCustomValidity(bad ? problem.message : "");
      this.input(field).toggleAttribute("aria-invalid", bad);
    }
  }

  private changed(): void {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.values()));
    this.onChange();
  }

  private saved(): Partial<FormValues> | undefined {
    try {
      const raw = localStorage.getItem(STORAGE_KEY);
      return raw ? (JSON.parse(raw) as Partial<FormValues>) : undefined;
    } catch {
      return undefined;
    }
  }

  private restore(): void {
    const saved = this.saved();
    if (saved) this.set(saved);
  }

  /** Clamps and rounds a number box to what the server accepts (not the size boxes: see SIZE). */
  private normalise(el: HTMLInputElement): void {
    const name = el.name as NumericField;
    const limits = LIMITS[name];
    if (!limits) return;
    let v = Number(el.value);
    if (el.value.trim() === "" || !Number.isFinite(v)) v = Number(el.defaultValue);
    v = Math.min(limits.max, Math.max(limits.min, v));
    if (limits.integer) v = Math.round(v);
    el.value = String(v);
    const slider = this.form.ownerDocument.getElementById(`${name}-range`) as HTMLInputElement | null;
    if (slider) slider.value = el.value;
  }

  /**
   * Keeps the seed box an integer from -1 to 2^64 - 1, in BigInt so every digit counts; anything else goes back to
   * -1 (random), and values past either end to that end, as the number boxes do.
   */
  private normaliseSeed(): void {
    const el = this.input("seed");
    const text = el.value.trim();
    let seed = /^-?\d+$/.test(text) ? BigInt(text) : RANDOM_SEED;
    if (seed < RANDOM_SEED) seed = RANDOM_SEED;
    if (seed > MAX_SEED) seed = MAX_SEED;
    el.value = seed.toString();
  }

  /** A slider and its number box show one value; the number box is the one with the name, so it is the truth. */
  private pairSliders(): void {
    for (const slider of Array.from(
      this.form.ownerDocument.querySelectorAll<HTMLInputElement>("input[type=range][data-pair]"),
    )) {
      const box = this.input(slider.dataset.pair!);
      slider.addEventListener("input", () => {
        box.value = slider.value;
        this.changed();
      });
      box.addEventListener("input", () => {
        if (box.value !== "") slider.value = box.value;
      });
    }
  }

  private setSelect(name: string, value: string): void {
    const select = this.select(name);
    // Jobs may carry A1111's label ("Euler a") where the options use our names ("euler-a").
    const match = Array.from(select.options).find(
      (o) => o.value === value || o.text.toLowerCase() === value.toLowerCase(),
    );
    if (match) select.value = match.value;
  }

  private number(name: string): number {
    return Number(this.input(name).value);
  }

  private input(idOrName: string): HTMLInputElement {
    return this.element(idOrName) as HTMLInputElement;
  }

  private text(name: string): HTMLTextAreaElement {
    return this.element(name) as HTMLTextAreaElement;
  }

  private select(name: string): HTMLSelectElement {
    return this.element(name) as HTMLSelectElement;
  }

  private button(id: string): HTMLButtonElement {
    return this.element(id) as HTMLButtonElement;
  }

  private element(id: string): HTMLElement {
    const el = this.form.ownerDocument.getElementById(id);
    if (!el) throw new Error(`the page has no #${id}`);
    return el;
  }
}

/** Why a side's text is not a size the server takes, or null when it is. */
function sideProblem(name: string, text: string): string | null {
  const v = Number(text);
  if (text.trim() === "" || !Number.isFinite(v))
    return `${name} is empty: enter a multiple of 8 from ${SIZE.min} to ${SIZE.max}`;
  if (v > SIZE.max) return `${name} ${v} is larger than ${SIZE.max}, the largest side the server takes`;
  if (v < SIZE.min) return `${name} ${v} is smaller than ${SIZE.min}, the smallest side the page offers`;
  if (v % 8 !== 0) {
    const down = Math.floor(v / 8) * 8;
    return `${name} ${v} is not a multiple of 8: use ${Math.max(SIZE.min, down)} or ${Math.min(SIZE.max, down + 8)}`;
  }
  return null;
}
