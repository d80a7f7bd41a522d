import { findPreprocessor } from "../control/preprocessors.js";
import type { ResolvedControlUnit } from "./params.js";

/**
 * The infotext entries of a generation's ControlNet units, as A1111's ControlNet extension writes them:
 * `ControlNet 0: "Module: scribble, Model: control_v11p_sd15_scribble [d4ba51ff], Weight: 0.8, ..."`, one key per unit,
 * fields in the extension's order, numbers as Python prints them. The thresholds and processor resolution are
 * written only for modules that read them (the extension's older writer left unset sliders out the same way), and
 * the processor resolution is the size the map was made at: the shorter side of the generation (maps are made at
 * the generation size here). `titles` are the models' titles ("name [hash]").
 */
export function controlNetInfotext(
  units: readonly ResolvedControlUnit[],
  titles: readonly string[],
  width: number,
  height: number,
): Record<string, string> {
  const out: Record<string, string> = {};
  units.forEach((u, i) => {
    const pre = findPreprocessor(u.module);
    const fields: [string, string][] = [
      ["Module", u.module],
      ["Model", titles[i]!],
      ["Weight", pyFloat(u.weight)],
      ["Resize Mode", u.resizeMode],
      ...(pre.thresholdA || pre.thresholdB
        ? [["Processor Res", String(Math.min(width, height))] as [string, string]]
        : []),
      ...(u.thresholdA !== undefined ? [["Threshold A", pyFloat(u.thresholdA)] as [string, string]] : []),
      ...(u.thresholdB !== undefined ? [["Threshold B", pyFloat(u.thresholdB)] as [string, string]] : []),
      ["Guidance Start", pyFloat(u.guidanceStart)],
      ["Guidance End", pyFloat(u.guidanceEnd)],
      ["Pixel Perfect", "False"],
      ["Control Mode", "Balanced"],
    ];
    out[`ControlNet ${i}`] = fields.map(([k, v]) => `${k}: ${v}`).join(", ");
  });
  return out;
}

/** A float as Python's str() writes it: 1.0, 0.8, 0.25 (JavaScript's shortest form agrees past the integers). */
function pyFloat(x: number): string {
  return Number.isInteger(x) ? `${x}.0` : String(x);
}
