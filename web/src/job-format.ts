/**
 * How a job's parameters read to a person, shared by the gallery cards and the image viewer so both say the
 * same thing the same way.
 */
import type { JobParams } from "./api-client.js";
import { SERVER_DEFAULTS } from "./generation-options.js";

/** Maps a sampler name to its display label; the page fills it in once the sampler list has loaded. */
export type SamplerLabel = (name: string) => string;

const MODE: Record<JobParams["type"], string> = {
  txt2img: "text to image",
  img2img: "sketch to image",
  inpaint: "inpainting",
};

/** Label/value rows for a detail view. */
export function paramRows(p: JobParams, seed: number | string, label: SamplerLabel): [string, string][] {
  const rows: [string, string][] = [
    ["Mode", MODE[p.type]],
    ["Sampler", p.sampler_name ? label(p.sampler_name) : "default"],
    ...(p.scheduler && p.scheduler !== SERVER_DEFAULTS.scheduler
      ? [["Schedule type", p.scheduler] as [string, string]]
      : []),
    ["Steps", String(p.steps ?? 20)],
    ["CFG scale", String(p.cfg_scale ?? 7)],
    ["Seed", String(seed)],
    ["Size", p.width && p.height ? `${p.width} × ${p.height}` : "model default"],
  ];
  if (p.type !== "txt2img") rows.push(["Strength", String(p.denoising_strength ?? 0.75)]);
  if (p.subseed_strength && p.subseed !== undefined)
    rows.push(["Variation seed", `${p.subseed} at strength ${p.subseed_strength}`]);
  if (p.type === "txt2img" && p.enable_hr) rows.push(["Hires. fix", hiresText(p)]);
  if (p.negative_prompt) rows.push(["Negative prompt", p.negative_prompt]);
  if (p.prompt_2) rows.push(["Prompt 2", p.prompt_2]);
  if (p.negative_prompt_2) rows.push(["Negative prompt 2", p.negative_prompt_2]);
  if (p.refiner_switch_at !== undefined && p.refiner_switch_at < 1)
    rows.push(["Refiner switch at", String(p.refiner_switch_at)]);
  return rows;
}

/** The hires fix in A1111's words: to what size or by what factor, with which upscaler, at what strength. */
function hiresText(p: JobParams): string {
  const x = p.hr_resize_x ?? 0;
  const y = p.hr_resize_y ?? 0;
  const size =
    x > 0 || y > 0
      ? `resize to ${x || "auto"} × ${y || "auto"}`
      : `upscale by ${p.hr_scale ?? SERVER_DEFAULTS.hr_scale}`;
  const strength = p.denoising_strength ?? SERVER_DEFAULTS.hr_denoising_strength;
  return `${size}, ${p.hr_upscaler ?? SERVER_DEFAULTS.hr_upscaler}, denoising ${strength}`;
}

/** One compact line for a card. */
export function summary(p: JobParams, seed: number | string, label: SamplerLabel): string {
  const parts = [
    p.sampler_name ? label(p.sampler_name) : "default sampler",
    `${p.steps ?? 20} steps`,
    `CFG ${p.cfg_scale ?? 7}`,
    `seed ${seed}`,
  ];
  if (p.width && p.height) parts.push(`${p.width}×${p.height}`);
  if (p.type !== "txt2img") parts.push(p.type);
  return parts.join(" · ");
}

/** "3 min ago" style, because a history is read by recency. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return "";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}
