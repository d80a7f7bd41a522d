// Op-type breakdown of the SD1.5 VAE decoder (random weights) with onnxruntime's profiler: where the time goes.
import { readFileSync, readdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { SD15 } from "../src/configs/pipeline.js";
import { vaeParamShapes } from "../src/models/param-shapes.js";
import { buildVaeDecoder } from "../src/models/vae.js";
import { CompileCache } from "../src/runtime/compile-cache.js";
import { ScopedWeights } from "../src/weights/weight-source.js";
import { randomWeights } from "./random-weights.js";

const size = Number(process.argv[2] ?? 256);
const dir = mkdtempSync(join(tmpdir(), "diffuse-prof-"));
const path = new CompileCache(dir).write(
  "vae",
  buildVaeDecoder(SD15.vae, new ScopedWeights(randomWeights(vaeParamShapes(SD15.vae))), { height: size, width: size }),
);
const s = await ort.InferenceSession.create(path, {
  intraOpNumThreads: 2,
  graphOptimizationLevel: "all",
  enableProfiling: true,
  profileFilePrefix: join(dir, "prof"),
});
const z = new ort.Tensor("float32", new Float32Array(4 * (size / 8) ** 2).fill(0.1), [1, 4, size / 8, size / 8]);
await s.run({ latent: z });
const t0 = performance.now();
await s.run({ latent: z });
console.log(`run: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
s.endProfiling();
const file = readdirSync(dir).find((f) => f.startsWith("prof"))!;
const events = JSON.parse(readFileSync(join(dir, file), "utf8")) as {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}[];
const byOp = new Map<string, number>();
for (const e of events)
  if (e.cat === "Node" && e.name.endsWith("_kernel_time"))
    byOp.set(e.args?.op_name ?? "?", (byOp.get(e.args?.op_name ?? "?") ?? 0) + e.dur);
const total = [...byOp.values()].reduce((a, b) => a + b, 0) / 2; // two runs profiled
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 12))
  console.log(`${op.padEnd(28)} ${(us / 2 / 1e6).toFixed(3)} s  ${((100 * us) / 2 / total).toFixed(1)}%`);
