import { readFileSync } from "node:fs";
import { join } from "node:path";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/**
 * How a cache entry stores each of its external tensors, by name: the format of its segment in the entry's manifest
 * (compact-weights.ts: "i8-rows"/"i8-cols" int8 values with their scales, "f16", "f32"...), found by the offset the
 * graph gives it; the graph's own data type beside it.
 */
export function storedForms(entry: string): Map<string, { format: string; dataType: number }> {
  const manifest = JSON.parse(readFileSync(join(entry, "manifest.json"), "utf8")) as {
    expand?: { segments: { offset: number; format: string }[] };
  };
  const formats = new Map((manifest.expand?.segments ?? []).map((s) => [s.offset, s.format]));
  const model = onnx.ModelProto.decode(readFileSync(join(entry, "model.onnx")));
  const found = new Map<string, { format: string; dataType: number }>();
  for (const t of model.graph?.initializer ?? []) {
    const offset = Number(t.externalData?.find((e) => e.key === "offset")?.value ?? Number.NaN);
    found.set(t.name!, { format: formats.get(offset) ?? "inline", dataType: t.dataType! });
  }
  return found;
}
