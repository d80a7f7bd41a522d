/**
 * The page's wiring: which part talks to which. Each part (form, canvas, progress, gallery) knows nothing of the
 * others; this file is where a finished job becomes a seed to reuse, or a history image becomes the sketch.
 */
import {
  ApiClient,
  type ImageRef,
  type JobCreateRequest,
  type JobStatus,
  type JobType,
  type SseEvent,
} from "./api-client.js";
import { SketchCanvas } from "./canvas.js";
import { CanvasToolbar } from "./canvas-toolbar.js";
import { byId } from "./dom.js";
import { ExtraNetworks } from "./extra-networks.js";
import { Gallery } from "./gallery.js";
import { optionFields, optionValues, requestSeed } from "./generation-options.js";
import { ModelPicker } from "./model-picker.js";
import { type FormValues, ParamsForm } from "./params-form.js";
import { ProgressView, type FinishedImage } from "./progress.js";
import { PromptStylePicker } from "./prompt-styles.js";
import { ScribbleControl } from "./scribble-control.js";
import { SketchStore } from "./sketch-store.js";
import { toast } from "./toast.js";
import { TokenDialog } from "./token-dialog.js";
import { Viewer } from "./viewer.js";
import { XyzPlotSection } from "./xyz-plot.js";

const HISTORY_LIMIT = 60;
/** Below this width the panels stack, and the result would otherwise be off screen after pressing Generate. */
const STACKED = window.matchMedia("(max-width: 759px)");

const toasts = byId("toasts");
const note = (message: string, kind: "info" | "error" = "info") => toast(toasts, message, kind);
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

const api = new ApiClient(new TokenDialog(byId<HTMLDialogElement>("token-dialog")));
const form = new ParamsForm(byId<HTMLFormElement>("params"));
const stage = byId("stage");
const canvas = new SketchCanvas(stage, form.values().width, form.values().height);
const toolbar = new CanvasToolbar(canvas, stage);
const progress = new ProgressView({
  frame: byId("output-frame"),
  image: byId<HTMLImageElement>("output-image"),
  empty: byId("output-empty"),
  progress: byId("progress"),
  bar: byId("progress-bar"),
  status: byId("status"),
  cancel: byId<HTMLButtonElement>("cancel"),
  thumbs: byId("output-thumbs"),
  actions: byId("output-actions"),
  download: byId<HTMLAnchorElement>("output-download"),
});

const actions = {
  open: (job: JobStatus, image: ImageRef) => void viewer.open(job, image).catch((e) => note(errorText(e), "error")),
  useSettings,
  sendToCanvas: (_job: JobStatus, image: ImageRef) => void sendToCanvas(image.url),
};
const viewer = new Viewer(byId<HTMLDialogElement>("viewer"), api, actions);
const gallery = new Gallery(byId<HTMLUListElement>("gallery"), byId("gallery-empty"), api, actions);

// Names go into the prompt field last typed in: the prompt, or the negative prompt (for negative embeddings).
let promptTarget = byId<HTMLTextAreaElement>("prompt");
for (const id of ["prompt", "negative_prompt"])
  byId<HTMLTextAreaElement>(id).addEventListener("focus", (e) => (promptTarget = e.target as HTMLTextAreaElement));
const picker = new ModelPicker(byId<HTMLSelectElement>("model-picker"), api, {
  // The new model's defaults (size, steps, SDXL's second prompts) and the embeddings that fit it.
  loaded: () =>
    void loadModel()
      .then(() => extras.load())
      .catch((e) => note(errorText(e), "error")),
  note: (message, kind) => note(message, kind),
});
const extras = new ExtraNetworks(
  { root: byId("extras"), loras: byId("lora-list"), embeddings: byId("embedding-list"), empty: byId("extras-empty") },
  api,
  () => promptTarget,
);

const styles = new PromptStylePicker(
  { list: byId("style-list"), save: byId<HTMLButtonElement>("style-save") },
  api,
  { prompt: byId<HTMLTextAreaElement>("prompt"), negative: byId<HTMLTextAreaElement>("negative_prompt") },
  (message, kind) => note(message, kind),
);

const scribble = new ScribbleControl(byId("scribble"), api, () => canvas.sketchDataUrl());

let maskEmpty = true;
let currentJob: string | null = null;

// ---- the sketch kept across reloads ----------------------------------------------------------------------------

const sketchStore = new SketchStore();
/** Until the saved sketch is back on the canvas, saving would replace it with the blank paper of a fresh page. */
let sketchRestored = false;
let saveTimer: ReturnType<typeof setTimeout> | undefined;
/** Waits for a pause in drawing: encoding three layers as PNG on every pointer event would make strokes lag. */
const SAVE_DELAY_MS = 400;

function scheduleSketchSave(): void {
  if (!sketchRestored) return;
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    void canvas
      .save()
      .then((sketch) => sketchStore.save(sketch))
      .then((kept) => {
        if (!kept) note("The sketch is too large to keep across a reload", "info");
      })
      .catch(() => undefined); // No IndexedDB (a private window): the sketch lives as long as the page.
  }, SAVE_DELAY_MS);
}

async function restoreSketch(): Promise<void> {
  try {
    const saved = await sketchStore.load();
    if (saved) await canvas.restore(saved);
  } catch {
    // Nothing saved that can be read back: the page starts with blank paper.
  } finally {
    sketchRestored = true;
  }
}

// ---- mode: what kind of job Generate will send -------------------------------------------------------------

function mode(): JobType {
  if (!form.values().use_sketch) return "txt2img";
  return maskEmpty ? "img2img" : "inpaint";
}

function showMode(): void {
  const m = mode();
  byId("mode-badge").textContent = scribble.active ? `${m} + scribble` : m;
  byId("strength-field").classList.toggle("inactive", m === "txt2img");
  byId("stage").classList.toggle("in-use", m !== "txt2img" || scribble.active);
  // The hires fix is txt2img's; the inpainting options mean something only with a mask.
  byId("hires-section").classList.toggle("inactive", m !== "txt2img");
  byId("hires-note").hidden = m === "txt2img";
  byId("inpaint-section").hidden = m !== "inpaint";
  // A closed section says whether it is in use, as A1111's checkbox headers do.
  const v = form.values();
  byId("hires-section").toggleAttribute("data-on", v.enable_hr);
  byId("variation-section").toggleAttribute("data-on", v.subseed_strength > 0);
}

form.onChange = showMode;
scribble.onChange = showMode;
form.onSizeChange = (w, h) => canvas.resize(w, h);
const afterCanvasChange = canvas.onChange;
canvas.onChange = () => {
  afterCanvasChange();
  maskEmpty = canvas.maskIsEmpty();
  showMode();
  scribble.sketchChanged();
  scheduleSketchSave();
};
// Drawing is a request to use the drawing: the first stroke switches the sketch on (unless it already guides the
// picture as a ControlNet scribble), where the user sees it, and undoing that stroke switches it off again.
canvas.onSketchStroke = () => {
  if (form.values().use_sketch || scribble.active) return undefined;
  form.set({ use_sketch: true });
  return () => form.set({ use_sketch: false });
};
// A mask only means something for inpainting, so painting one turns the sketch on.
toolbar.onMaskPainted = () => {
  if (!form.values().use_sketch) form.set({ use_sketch: true });
};
toolbar.onImage = (file) =>
  void canvas.loadImage(file).then(
    () => {
      form.set({ use_sketch: true });
      note("Image placed on the canvas");
    },
    () => note("That file could not be read as an image (PNG, JPEG or WebP)", "error"),
  );

// ---- generating ---------------------------------------------------------------------------------------------

async function generate(): Promise<void> {
  if (progress.busy) return;
  const v = form.values();
  const type = mode();
  const size = form.sizeProblem();
  if (size) {
    note(size.message, "error");
    byId(size.field).focus();
    return;
  }
  const control = await scribble.unit();
  if (type === "txt2img" && !control && !v.prompt.trim()) {
    note("Describe the image in the prompt, or switch on “Use sketch”", "error");
    byId("prompt").focus();
    return;
  }
  const request: JobCreateRequest = {
    type,
    ...generationFields(v),
    ...optionFields(v, type),
    // The canvas as a ControlNet scribble: its strokes hold the layout (with or without it as the init image).
    ...(control ? { controlnet: [control] } : {}),
  };
  if (type !== "txt2img") {
    request.init_image = canvas.sketchDataUrl();
    request.denoising_strength = v.denoising_strength;
    if (type === "inpaint") request.mask = canvas.maskDataUrl() ?? undefined;
  }
  progress.start();
  setGenerating(true);
  if (STACKED.matches) byId("output-frame").scrollIntoView({ behavior: "smooth", block: "center" });
  try {
    const created = await api.createJob(request);
    progress.queued(created.position);
    void refreshGallery();
    await track(created.id);
  } catch (e) {
    progress.failed(errorText(e));
  } finally {
    setGenerating(false);
    void refreshGallery();
  }
}

/** The request's fields every kind of job shares, from the form (A1111's names, as both APIs take them). */
function generationFields(v: FormValues) {
  return {
    prompt: v.prompt,
    negative_prompt: v.negative_prompt,
    // Only for a model with a second encoder (the fields are shown then), and only when filled in.
    ...(secondPrompts && v.prompt_2 ? { prompt_2: v.prompt_2 } : {}),
    ...(secondPrompts && v.negative_prompt_2 ? { negative_prompt_2: v.negative_prompt_2 } : {}),
    steps: v.steps,
    cfg_scale: v.cfg_scale,
    seed: requestSeed(v.seed),
    sampler_name: v.sampler_name,
    width: v.width,
    height: v.height,
    batch_size: v.batch_size,
    n_iter: 1,
  };
}

// ---- the X/Y/Z plot -------------------------------------------------------------------------------------------

const xyz = new XyzPlotSection(
  api,
  () => {
    const v = form.values();
    const size = form.sizeProblem();
    if (size) {
      note(size.message, "error");
      return undefined;
    }
    return { ...generationFields(v), ...optionFields(v, "txt2img") };
  },
  (message) => note(message, "error"),
);

/** Follows one job to its end, feeding the progress panel. */
async function track(id: string): Promise<void> {
  currentJob = id;
  let finished: Promise<void> = Promise.resolve();
  const onEvent = (e: SseEvent) => {
    switch (e.event) {
      case "queued":
        progress.queued(e.data.position);
        break;
      case "running":
        progress.running();
        break;
      case "step":
        progress.step(e.data.step, e.data.steps, e.data.batch, e.data.batches, e.data.preview, e.data.preview_withheld);
        break;
      case "done":
        finished = showImages(e.data.images);
        break;
      case "error":
        progress.failed(e.data.message);
        break;
      case "cancelled":
        progress.cancelled(e.data.message);
        break;
    }
  };
  try {
    await api.follow(id, onEvent, new AbortController().signal);
    await finished;
  } finally {
    currentJob = null;
  }
}

async function showImages(images: ImageRef[]): Promise<void> {
  const finished: FinishedImage[] = await Promise.all(
    images.map(async (img) => ({
      src: await api.imageSrc(img.url),
      url: img.url,
      seed: img.seed,
      alt: `Generated image, seed ${img.seed}`,
    })),
  );
  progress.done(finished);
  if (images[0]) form.rememberSeed(images[0].seed);
}

function setGenerating(on: boolean): void {
  const button = byId<HTMLButtonElement>("generate");
  button.disabled = on;
  button.querySelector(".generate-label")!.textContent = on ? "Generating…" : "Generate";
  document.body.classList.toggle("generating", on);
}

byId<HTMLFormElement>("params").addEventListener("submit", (e) => {
  e.preventDefault();
  void generate();
});
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
    e.preventDefault();
    void generate();
  }
});
byId<HTMLButtonElement>("cancel").addEventListener("click", async (e) => {
  const button = e.currentTarget as HTMLButtonElement;
  if (!currentJob) return;
  button.disabled = true;
  try {
    await api.cancel(currentJob);
  } catch (err) {
    button.disabled = false;
    note(`Could not cancel: ${errorText(err)}`, "error");
  }
});

// ---- history actions ----------------------------------------------------------------------------------------

function useSettings(job: JobStatus, image: ImageRef | undefined): void {
  const p = job.params;
  form.set({
    prompt: p.prompt,
    negative_prompt: p.negative_prompt ?? "",
    prompt_2: p.prompt_2 ?? "",
    negative_prompt_2: p.negative_prompt_2 ?? "",
    sampler_name: p.sampler_name,
    steps: p.steps,
    cfg_scale: p.cfg_scale,
    seed: String(image?.seed ?? p.seed),
    width: p.width,
    height: p.height,
    batch_size: p.batch_size,
    // A txt2img job's denoising strength is its hires fix's, not the sketch's.
    ...(p.type !== "txt2img" ? { denoising_strength: p.denoising_strength } : {}),
    ...optionValues(job, image),
  });
  scribble.applySettings(p.controlnet?.[0]);
  note(
    p.has_init_image
      ? "Settings loaded (the original sketch is not stored: draw or send one to the canvas)"
      : "Settings loaded",
  );
  if (STACKED.matches) byId("prompt").scrollIntoView({ behavior: "smooth", block: "center" });
}

/** Puts an image on the canvas at its own size, so a generated picture can be refined with img2img. */
async function sendToCanvas(url: string): Promise<void> {
  try {
    const blob = await api.imageBlob(url);
    const bitmap = await createImageBitmap(blob);
    const { width, height } = bitmap;
    bitmap.close();
    if (width % 8 === 0 && height % 8 === 0) form.set({ width, height });
    await canvas.loadImage(blob);
    form.set({ use_sketch: true });
    note("Sent to the canvas: draw over it, or mask a part to repaint");
    byId("sketch-title").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (e) {
    note(`Could not put the image on the canvas: ${errorText(e)}`, "error");
  }
}

byId("output-to-canvas").addEventListener("click", () => {
  const img = progress.current;
  if (img) void sendToCanvas(img.url);
});

// ---- loading ------------------------------------------------------------------------------------------------

async function refreshGallery(): Promise<JobStatus[]> {
  try {
    const jobs = await api.history(HISTORY_LIMIT);
    gallery.render(jobs);
    return jobs;
  } catch (e) {
    note(`Could not load the history: ${errorText(e)}`, "error");
    return [];
  }
}

async function loadSamplers(): Promise<void> {
  const list = await api.samplers();
  form.setSamplers(list.samplers, list.default);
  const labels = new Map<string, string>();
  for (const s of list.samplers) {
    labels.set(s.name.toLowerCase(), s.label);
    labels.set(s.label.toLowerCase(), s.label);
  }
  gallery.samplerLabel = viewer.samplerLabel = (name) => labels.get(name.toLowerCase()) ?? name;
}

/** The hires fix's upscalers, as A1111 lists them: the latent modes, then the pixel upscalers. */
async function loadUpscalers(): Promise<void> {
  const [latent, pixel] = await Promise.all([api.latentUpscaleModes(), api.upscalers()]);
  form.setUpscalers([...new Set([...latent.map((u) => u.name), ...pixel.map((u) => u.name)])]);
}

/** Whether the model has SDXL's second text encoder, whose prompts the page then shows and sends. */
let secondPrompts = false;

function showSecondPrompts(show: boolean): void {
  secondPrompts = show;
  byId("prompt-2-field").hidden = !show;
  byId("negative-prompt-2-field").hidden = !show;
}

async function loadModel(): Promise<void> {
  const chip = byId("model-chip");
  try {
    const { models } = await api.models();
    const model = models.find((m) => m.loaded) ?? models[0];
    byId("model-name").textContent = model ? model.name : "no model";
    chip.title = model
      ? `Model ${model.name} · hash ${model.hash} · native size ${model.default_size}px`
      : "No model is loaded";
    chip.dataset.state = model ? "online" : "empty";
    if (model) form.setNativeSize(model.default_size);
    form.setPromptExamples(model?.prompt_examples ?? null);
    if (model)
      form.setModelDefaults({
        size: model.default_size,
        cfgScale: model.default_cfg_scale,
        steps: model.default_steps,
        sampler: model.default_sampler,
      });
    showSecondPrompts(model?.family === "sdxl");
  } catch (e) {
    byId("model-name").textContent = "offline";
    chip.dataset.state = "offline";
    throw e;
  }
}

async function start(): Promise<void> {
  showMode();
  void restoreSketch();
  // The samplers first: the model's defaults may pick one of them.
  const samplers = loadSamplers();
  const results = await Promise.allSettled([samplers.catch(() => undefined).then(loadModel), samplers]);
  void picker.load().catch((e) => note(`Could not list the models: ${errorText(e)}`, "error"));
  // Listed once the model is up (which embeddings fit depends on it); a failure leaves the list empty.
  void extras.load().catch((e) => note(`Could not list LoRAs and embeddings: ${errorText(e)}`, "error"));
  void scribble.load().catch((e) => note(`Could not list the ControlNets: ${errorText(e)}`, "error"));
  void styles.load().catch((e) => note(`Could not list the prompt styles: ${errorText(e)}`, "error"));
  void xyz.load().catch((e) => note(`Could not list the X/Y/Z plot's axes: ${errorText(e)}`, "error"));
  void loadUpscalers().catch((e) => note(`Could not list the upscalers: ${errorText(e)}`, "error"));
  for (const r of results)
    if (r.status === "rejected") note(`Could not reach the server: ${errorText(r.reason)}`, "error");
  const jobs = await refreshGallery();
  const lastDone = jobs.find((j) => j.state === "done" && j.images.length > 0);
  if (lastDone) form.rememberSeed(lastDone.images[0]!.seed);
  // A reload while a job runs picks it up again instead of leaving it orphaned on the server.
  const active = jobs.find((j) => j.state === "running") ?? [...jobs].reverse().find((j) => j.state === "queued");
  if (active && !progress.busy) {
    progress.resume(active);
    setGenerating(true);
    try {
      await track(active.id);
    } finally {
      setGenerating(false);
      void refreshGallery();
    }
  }
}

byId("gallery-refresh").addEventListener("click", () => void refreshGallery());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !progress.busy) void refreshGallery();
});

void start();
