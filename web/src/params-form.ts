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
  /** A1111's schedule type, by label ("Automatic": the sampler's own). */
  scheduler: string;
  steps: number;
  cfg_scale: number;
  /**
   * Decimal text, exact: seeds run to 2^64 - 1, past what a number holds (the box is a text box for the same
   * reason). "-1": random.
   */
  seed: string;
  /** A1111's variation seed (decimal text like the seed) and how much of its noise is mixed in (0: none). */
  subseed: string;
  subseed_strength: number;
  /** A1111's "resize seed from": the seed's noise drawn for this size (0: off). */
  seed_resize_from_w: number;
  seed_resize_from_h: number;
  width: number;
  height: number;
  batch_size: number;
  /** The sketch's strength (img2img and inpaint). */
  denoising_strength: number;
  use_sketch: boolean;
  /** A1111's hires fix (txt2img). Its strength is the job's denoising_strength, kept apart from the sketch's. */
  enable_hr: boolean;
  hr_upscaler: string;
  hr_second_pass_steps: number;
  hr_denoising_strength: number;
  hr_scale: number;
  hr_resize_x: number;
  hr_resize_y: number;
  /** "": the sampler above. */
  hr_sampler_name: string;
  /** "": the schedule type above. */
  hr_scheduler: string;
  hr_prompt: string;
  hr_negative_prompt: string;
  /** A1111's inpainting options (sent with a mask only). */
  mask_blur: number;
  inpainting_mask_invert: boolean;
  inpainting_fill: string;
  inpaint_full_res: boolean;
  inpaint_full_res_padding: number;
}

/**
 * How each value lives in the page: a text box or text area, a number box, a select, a select of numbers, a
 * switch, a seed's text box, or a yes/no select ("true" / "false", for A1111's two-way radio choices). The element's id is the key, but for
 * the sketch switch. Listed in the order they are filled in: each sampler before its schedule type, whose options
 * depend on it.
 */
type Kind = "text" | "number" | "select" | "count" | "switch" | "seed" | "flag";
const FIELDS: { readonly [K in keyof FormValues]: Kind } = {
  prompt: "text",
  negative_prompt: "text",
  prompt_2: "text",
  negative_prompt_2: "text",
  sampler_name: "select",
  scheduler: "select",
  steps: "number",
  cfg_scale: "number",
  seed: "seed",
  subseed: "seed",
  subseed_strength: "number",
  seed_resize_from_w: "number",
  seed_resize_from_h: "number",
  width: "number",
  height: "number",
  batch_size: "count",
  denoising_strength: "number",
  use_sketch: "switch",
  enable_hr: "switch",
  hr_upscaler: "select",
  hr_second_pass_steps: "number",
  hr_denoising_strength: "number",
  hr_scale: "number",
  hr_resize_x: "number",
  hr_resize_y: "number",
  hr_sampler_name: "select",
  hr_scheduler: "select",
  hr_prompt: "text",
  hr_negative_prompt: "text",
  mask_blur: "number",
  inpainting_mask_invert: "flag",
  inpainting_fill: "select",
  inpaint_full_res: "flag",
  inpaint_full_res_padding: "number",
};
const KEYS = Object.keys(FIELDS) as (keyof FormValues)[];
/** The selects whose choice changes which schedule types are offered. */
const SAMPLING: ReadonlySet<string> = new Set(["sampler_name", "scheduler", "hr_sampler_name"]);
const elementId = (key: keyof FormValues) => (key === "use_sketch" ? "use-sketch" : key);

const STORAGE_KEY = "diffuse.params";
/** For a model whose folder has no prompt_examples.json: what to type, without suggesting a subject it may not draw. */
const NEUTRAL_PLACEHOLDERS = { prompt: "Describe the picture you want", negative: "What the picture should not show" };
/** PyTorch's seeds are unsigned 64-bit integers; -1 asks for a random one. */
const MAX_SEED = 2n ** 64n - 1n;
const RANDOM_SEED = -1n;
/** The largest side the server takes (MAX_SIDE in src/server/api-types.ts). */
const SIZE_MAX = 2048;

/** Limits as the server validates them, so the page corrects a value before a round trip rejects it. */
const LIMITS = {
  steps: { min: 1, max: 150, integer: true },
  cfg_scale: { min: 0, max: 30, integer: false },
  batch_size: { min: 1, max: 4, integer: true },
  denoising_strength: { min: 0.05, max: 1, integer: false },
  subseed_strength: { min: 0, max: 1, integer: false },
  seed_resize_from_w: { min: 0, max: SIZE_MAX, integer: true },
  seed_resize_from_h: { min: 0, max: SIZE_MAX, integer: true },
  hr_second_pass_steps: { min: 0, max: 150, integer: true },
  // The server refuses a hires pass with nothing to repaint (0); A1111's slider starts at 0.01 for the same reason.
  hr_denoising_strength: { min: 0.01, max: 1, integer: false },
  hr_scale: { min: 1, max: 8, integer: false },
  hr_resize_x: { min: 0, max: SIZE_MAX, integer: true },
  hr_resize_y: { min: 0, max: SIZE_MAX, integer: true },
  mask_blur: { min: 0, max: 64, integer: true },
  inpaint_full_res_padding: { min: 0, max: 256, integer: true },
} as const;

type NumericField = keyof typeof LIMITS;

/**
 * Sides the page offers: the server takes up to 2048 (MAX_SIDE in src/server/api-types.ts); below 64 no model draws
 * anything recognisable. Sizes are not corrected behind the user's back (a 100 silently becoming 104 is a surprise
 * found in the history): one the server would refuse is refused here, with the reason, before it is sent.
 */
const SIZE = { min: 64, max: SIZE_MAX } as const;

export class ParamsForm {
  /** Called when width or height settle on a new value, so the canvas can follow. */
  onSizeChange: (width: number, height: number) => void = () => undefined;
  /** Called on any change, e.g. to update the mode badge. */
  onChange: () => void = () => undefined;

  private lastSeed: string | null = null;
  /** Each sampler's schedule types, once the server has listed them. */
  private scheduleTypes = new Map<string, readonly string[]>();
  /**
   * Values for selects whose options have not arrived yet (the samplers, schedule types and upscalers come from the
   * server after a reload): applied when they do, and saved meanwhile, so a reload does not lose the choice.
   */
  private unapplied: Partial<Record<keyof FormValues, string>> = {};

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
      if (el === this.input("seed") || el === this.input("subseed")) this.normaliseSeed(el as HTMLInputElement);
      if (el === this.input("width") || el === this.input("height")) this.showSizeProblem();
      // The user's own choice replaces one still waiting for its options.
      if (el instanceof HTMLSelectElement) delete this.unapplied[el.name as keyof FormValues];
      if (el instanceof HTMLSelectElement && SAMPLING.has(el.name)) this.offerScheduleTypes();
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
    this.button("subseed-random").addEventListener("click", () => this.set({ subseed: "-1" }));
    this.button("seed-reuse").addEventListener("click", () => {
      if (this.lastSeed !== null) this.set({ seed: this.lastSeed });
    });
    this.button("size-swap").addEventListener("click", () => {
      const { width, height } = this.values();
      this.set({ width: height, height: width });
    });
  }

  values(): FormValues {
    const out: Record<string, string | number | boolean> = {};
    for (const key of KEYS) {
      const el = this.element(elementId(key)) as HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
      const kind = FIELDS[key];
      out[key] =
        kind === "number" || kind === "count"
          ? Number(el.value)
          : kind === "switch"
            ? (el as HTMLInputElement).checked
            : kind === "flag"
              ? el.value === "true"
              : el.value;
    }
    return out as unknown as FormValues;
  }

  /** The values the page starts with (each element's own default), e.g. for what a past job left unset. */
  defaults(): FormValues {
    const out: Record<string, string | number | boolean> = {};
    for (const key of KEYS) {
      const el = this.element(elementId(key));
      const kind = FIELDS[key];
      if (el instanceof HTMLSelectElement) {
        const value = (Array.from(el.options).find((o) => o.defaultSelected) ?? el.options[0])?.value ?? "";
        out[key] = kind === "flag" ? value === "true" : kind === "count" ? Number(value) : value;
      } else if (el instanceof HTMLInputElement && kind === "switch") out[key] = el.defaultChecked;
      else {
        const value = (el as HTMLInputElement | HTMLTextAreaElement).defaultValue;
        out[key] = kind === "number" ? Number(value) : value;
      }
    }
    return out as unknown as FormValues;
  }

  /** Fills in the given values; a change of size is passed on like a user's edit. */
  set(values: Partial<FormValues>): void {
    const before = this.values();
    // In FIELDS' order, so the sampler is set before its schedule type is looked for among its options.
    for (const key of KEYS) {
      const value = values[key];
      if (value === undefined) continue;
      const kind = FIELDS[key];
      if (kind === "switch") this.input(elementId(key)).checked = Boolean(value);
      else if (kind === "select" || kind === "count" || kind === "flag") {
        if (this.setSelect(key, String(value))) delete this.unapplied[key];
        else this.unapplied[key] = String(value);
        if (SAMPLING.has(key)) this.offerScheduleTypes();
      } else if (kind === "text") this.text(key).value = String(value);
      else if (kind === "seed") {
        this.input(key).value = String(value);
        this.normaliseSeed(this.input(key));
      } else if (key === "width" || key === "height") {
        this.input(key).value = String(value);
        this.showSizeProblem();
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

  /**
   * The server's samplers, for the sampler and the hires sampler ("Use same sampler" first), each with the schedule
   * types it takes. Nothing is saved here: a save now would count the defaults as the user's choices.
   */
  setSamplers(samplers: SamplerInfo[], fallback: string): void {
    this.scheduleTypes = new Map(samplers.map((s) => [s.name, s.schedule_types]));
    const wanted = this.saved()?.sampler_name ?? fallback;
    this.fillSelect(
      "sampler_name",
      samplers.map((s) => new Option(s.label, s.name)),
    );
    this.setSelect("sampler_name", samplers.some((s) => s.name === wanted || s.label === wanted) ? wanted : fallback);
    delete this.unapplied.sampler_name;
    this.fillSelect("hr_sampler_name", [
      new Option("Use same sampler", ""),
      ...samplers.map((s) => new Option(s.label, s.name)),
    ]);
    this.offerScheduleTypes();
  }

  /** The hires fix's upscalers by A1111's names: the latent modes, then the pixel ones (GET /sdapi/v1/upscalers). */
  setUpscalers(names: readonly string[]): void {
    this.fillSelect(
      "hr_upscaler",
      names.map((n) => new Option(n, n)),
    );
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
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ ...this.values(), ...this.unapplied }));
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
   * Keeps a seed box an integer from -1 to 2^64 - 1, in BigInt so every digit counts; anything else goes back to
   * -1 (random), and values past either end to that end, as the number boxes do.
   */
  private normaliseSeed(el: HTMLInputElement): void {
    const text = el.value.trim();
    let seed = /^-?\d+$/.test(text) ? BigInt(text) : RANDOM_SEED;
    if (seed < RANDOM_SEED) seed = RANDOM_SEED;
    if (seed > MAX_SEED) seed = MAX_SEED;
    el.value = seed.toString();
  }

  /**
   * The schedule types of the chosen sampler, and of the hires sampler; a chosen type stays if its sampler takes it,
   * else Automatic. The hires pass offers "Use same scheduler" only when its sampler takes the first pass's type.
   * A select with one choice is disabled, so it is plain that there is nothing to choose.
   */
  private offerScheduleTypes(): void {
    const sampler = this.select("sampler_name").value;
    const types = this.scheduleTypes.get(sampler);
    if (!types) return;
    const asOptions = (list: readonly string[]) => list.map((t) => new Option(t, t));
    this.fillSelect("scheduler", asOptions(types));
    const hiresTypes = this.scheduleTypes.get(this.select("hr_sampler_name").value || sampler) ?? types;
    const same = hiresTypes.includes(this.select("scheduler").value);
    this.fillSelect("hr_scheduler", [
      ...(same ? [new Option("Use same scheduler", "")] : []),
      ...asOptions(hiresTypes),
    ]);
    for (const name of ["scheduler", "hr_scheduler"] as const) {
      const select = this.select(name);
      select.disabled = select.options.length < 2;
      select.title = select.disabled
        ? "This sampler walks its own timestep grid: it takes no schedule type"
        : "Where the sampler puts its noise levels; Automatic: the sampler's own";
    }
  }

  /**
   * New options for a select, keeping its value when it is still offered, else taking one that waited for them,
   * else the first option.
   */
  private fillSelect(name: keyof FormValues, options: HTMLOptionElement[]): void {
    const select = this.select(name);
    const current = select.value;
    select.replaceChildren(...options);
    const waiting = this.unapplied[name];
    if (waiting !== undefined && this.setSelect(name, waiting)) delete this.unapplied[name];
    else if (!this.setSelect(name, current)) select.selectedIndex = 0;
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

  /** Chooses the option with this value (or label); false when there is none. */
  private setSelect(name: string, value: string): boolean {
    const select = this.select(name);
    // Jobs may carry A1111's label ("Euler a") where the options use our names ("euler-a").
    const match = Array.from(select.options).find(
      (o) => o.value === value || o.text.toLowerCase() === value.toLowerCase(),
    );
    if (match) select.value = match.value;
    return match !== undefined;
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
