import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { arch, cpus } from "node:os";
import { dirname, join } from "node:path";
import ort from "onnxruntime-node";
import { installFolder, makeBuildFolder, sweepAbandoned } from "./atomic-folder.js";
import { sampledDigest, sha256 } from "./file-digest.js";
import { Session, type SessionOptions } from "./session.js";

/**
 * onnxruntime's fully optimized graph of a compile-cache entry (with its CPU-specific layout transforms), kept in
 * the entry as `optimized/`: later loads open it with optimizations off, which takes about 1 s instead of about
 * 7 s for the SD1.5 UNet (same outputs, same speed).
 *
 * The copy is written into a private folder with its marker and renamed into place whole (atomic-folder.ts), so
 * processes that open the same entry at once never write the same files; the folder keeps the weights file's
 * name, which onnxruntime writes into the optimized graph. The marker records the runtime version, the CPU, and
 * the sizes and digests of both files (file-digest.ts), all checked at every load: a copy made by another
 * runtime or CPU, truncated, or with files overwritten is rebuilt, never run.
 */

const COPY = "optimized";
const MODEL = "model.opt.onnx";
const WEIGHTS = "weights.opt.bin";
const MARKER = "optimized.json";
/** Where versions before the copy had its own folder kept it, in the entry itself. */
const LEGACY = ["model.opt.onnx", "weights.opt.bin", "optimized.json"];

interface Fingerprint {
  onnxruntime: string;
  cpu: string;
}

interface Marker extends Fingerprint {
  /** Unique to this copy: a process whose runtime refused the copy replaces that one, not a newer one. */
  id: string;
  modelBytes: number;
  modelSha256: string;
  weightsBytes: number;
  weightsSample: string;
}

/** Opens a cache entry's graph (the path of its model.onnx), through the optimized copy when it is valid. */
export async function openCachedSession(modelPath: string, opts: SessionOptions = {}): Promise<Session> {
  if ((opts.optimization ?? "all") !== "all") return Session.create(modelPath, opts);
  const entry = dirname(modelPath);
  const copy = join(entry, COPY);
  const fingerprint = currentFingerprint();
  const found = inspect(copy, fingerprint);
  let refused: string | undefined;
  if ("id" in found) {
    try {
      return await Session.create(join(copy, MODEL), { ...opts, optimization: "disabled" });
    } catch {
      refused = found.id; // a copy the runtime refuses is rebuilt below and replaces this one
    }
  }
  sweepAbandoned(entry);
  const tmp = makeBuildFolder(copy);
  try {
    const session = await Session.create(modelPath, { ...opts, saveOptimized: { modelPath: join(tmp, MODEL), weightsFile: WEIGHTS } });
    try {
      saveCopy(tmp, copy, fingerprint, refused);
      for (const name of LEGACY) rmSync(join(entry, name), { force: true });
    } catch {
      // The copy only saves time at later loads and the session is good: a later load tries again.
    }
    return session;
  } finally {
    rmSync(tmp, { recursive: true, force: true }); // nothing left once installed
  }
}

/** Writes the marker of the copy onnxruntime saved in `tmp` and puts it in place (unless a valid one is there). */
function saveCopy(tmp: string, copy: string, fingerprint: Fingerprint, refused: string | undefined): void {
  const model = join(tmp, MODEL);
  const weights = join(tmp, WEIGHTS);
  if (!existsSync(model) || !existsSync(weights)) return;
  const bytes = readFileSync(model);
  const marker: Marker = {
    ...fingerprint,
    id: randomBytes(8).toString("hex"),
    modelBytes: bytes.length,
    modelSha256: sha256(bytes),
    weightsBytes: statSync(weights).size,
    weightsSample: sampledDigest(weights),
  };
  writeFileSync(join(tmp, MARKER), JSON.stringify(marker));
  installFolder(tmp, copy, (d) => {
    const c = inspect(d, fingerprint);
    return "id" in c && c.id !== refused;
  });
}

/** Why the optimized copy of the entry whose model is at `modelPath` would not be used, or undefined if it would. */
export function optimizedCopyProblem(modelPath: string): string | undefined {
  const found = inspect(join(dirname(modelPath), COPY), currentFingerprint());
  return "problem" in found ? found.problem : undefined;
}

function inspect(dir: string, fingerprint: Fingerprint): { id: string } | { problem: string } {
  let m: Marker;
  try {
    m = JSON.parse(readFileSync(join(dir, MARKER), "utf8")) as Marker;
  } catch {
    return { problem: "no optimized copy" };
  }
  if (m.onnxruntime !== fingerprint.onnxruntime || m.cpu !== fingerprint.cpu) return { problem: "made by another onnxruntime or CPU" };
  try {
    const model = join(dir, MODEL);
    const weights = join(dir, WEIGHTS);
    if (statSync(model).size !== m.modelBytes || statSync(weights).size !== m.weightsBytes) return { problem: "file sizes differ from the marker (truncated)" };
    if (sha256(readFileSync(model)) !== m.modelSha256) return { problem: "optimized graph file corrupted" };
    if (sampledDigest(weights) !== m.weightsSample) return { problem: "optimized weights file corrupted" };
  } catch {
    return { problem: "optimized files missing" };
  }
  return { id: m.id };
}

/**
 * What the optimized graph depends on: the runtime version, and the CPU, by model name and (on Linux) by its
 * instruction-set flags, since the same model name can come with AVX-512 turned off (virtual machines), which
 * changes the layout the optimizer picks.
 */
function currentFingerprint(): Fingerprint {
  let flags = "";
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "";
  } catch {
    // not Linux: the model name has to do
  }
  const model = cpus()[0]?.model ?? "";
  return { onnxruntime: ort.env.versions.node ?? "", cpu: flags ? `${model} (${arch()}, flags ${sha256(Buffer.from(flags)).slice(0, 16)})` : `${model} (${arch()})` };
}
