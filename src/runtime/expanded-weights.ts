import { closeSync, copyFileSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { InternalError } from "../errors.js";
import type { ExternalSegment } from "../onnx/serialize.js";
import { makeBuildFolder, sweepAbandoned } from "./atomic-folder.js";
import { expandInto, type StoredFormat } from "./compact-weights.js";
import { externalTensors } from "./external-tensors.js";
import { halfConverter } from "./half-simd.js";
import { Session, type SessionOptions } from "./session.js";
import { PatchApplier, type TensorPatch, type WeightPatches } from "./weight-patch.js";

/**
 * Opens a graph whose weights are kept compact (compact-weights.ts): its fp32 weights file is rebuilt, segment by
 * segment, in a folder private to this call, and onnxruntime maps it from there like any weights file; the folder
 * is deleted as soon as the session holds the mapping (on Windows, which cannot delete a mapped file, when the
 * session is released), and one left by a killed process is swept by the next call.
 *
 * The folder is in /dev/shm when that has room: writing there costs no disk I/O, and on the 2-core VM the benchmark
 * runs on, rebuilding the SD1.5 UNet's 3.4 GB there took 2.5-3.3 s against 6-15 s in a file on disk (whose dirty
 * pages the kernel starts writing back). Memory is what onnxruntime would use for the weights anyway: it maps the
 * file instead of reading it, and keeps no packed copies of them (SessionOptions.prepack): the whole file stays in
 * memory while the session maps it, so a copy would hold the weights twice.
 *
 * `patches` (weight-patch.ts) are added to their tensors as the file is rebuilt: this is where LoRAs are merged.
 * The graph is the cached one, and nothing is written to the cache: another set of patches is another rebuild of
 * this private file, never another cache entry.
 */

export interface CompactGraph {
  /** The .onnx file, whose external data references `location` in its own folder. */
  modelPath: string;
  location: string;
  /** The file holding the tensors in their stored forms. */
  storedPath: string;
  /** Size of the fp32 file to rebuild. */
  bytes: number;
  segments: readonly ExternalSegment[];
}

const SHM = "/dev/shm";
/** What /dev/shm keeps free for others beyond our file. */
const SHM_MARGIN = 256 * 2 ** 20;

export async function openCompactGraph(graph: CompactGraph, name: string, fallbackDir: string, opts: SessionOptions = {}, patches?: WeightPatches): Promise<Session> {
  const roots = [...new Set([scratchRoot(graph.bytes, fallbackDir), fallbackDir])];
  const patched = patchesByOffset(graph, patches);
  let folder: string | undefined;
  for (const [i, root] of roots.entries()) {
    try {
      folder = await rebuildIn(root, graph, name, patched, opts);
      break;
    } catch (e) {
      // /dev/shm filled up since it was checked: the cache's own folder has the disk
      if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      if (i === roots.length - 1) throw new InternalError(`no room in ${root} to rebuild the ${(graph.bytes / 1e9).toFixed(1)} GB of weights of ${graph.modelPath}; free some space there or point $DIFFUSE_CACHE elsewhere`);
    }
  }
  const remove = () => rmSync(folder!, { recursive: true, force: true });
  let session: Session;
  try {
    session = await Session.create(join(folder!, "model.onnx"), opts);
  } catch (e) {
    remove();
    throw e;
  }
  try {
    remove();
  } catch {
    session.onRelease(() => {
      try {
        remove();
      } catch {
        // left for sweepAbandoned
      }
    });
  }
  return session;
}

/** The patches of each tensor, by its offset in the fp32 file (segments are found by offset). */
type PatchedTensors = ReadonlyMap<number, { name: string; patches: readonly TensorPatch[] }>;

function patchesByOffset(graph: CompactGraph, patches: WeightPatches | undefined): PatchedTensors {
  const out = new Map<number, { name: string; patches: readonly TensorPatch[] }>();
  if (!patches || patches.size === 0) return out;
  const tensors = externalTensors(graph.modelPath);
  for (const [name, list] of patches) {
    const t = tensors.get(name);
    // Only weights big enough to be external are patched; the builders keep every checkpoint weight there.
    if (!t) throw new InternalError(`${graph.modelPath}: no external weight named ${name} to patch`);
    if (list.length > 0) out.set(t.offset, { name, patches: list });
  }
  return out;
}

/** The graph and its rebuilt weights in a new private folder under `root` (nothing left there when it fails). */
async function rebuildIn(root: string, graph: CompactGraph, name: string, patched: PatchedTensors, opts: SessionOptions): Promise<string> {
  mkdirSync(root, { recursive: true });
  sweepAbandoned(root);
  const folder = makeBuildFolder(join(root, name));
  try {
    copyFileSync(graph.modelPath, join(folder, "model.onnx"));
    await expandWeights(graph, join(folder, graph.location), patched, opts);
    return folder;
  } catch (e) {
    rmSync(folder, { recursive: true, force: true });
    throw e;
  }
}

function scratchRoot(bytes: number, fallbackDir: string): string {
  try {
    const fs = statfsSync(SHM);
    if (fs.bavail * fs.bsize >= bytes + SHM_MARGIN) return join(SHM, `diffuse-${process.getuid?.() ?? "user"}`);
  } catch {
    // no /dev/shm (macOS, Windows)
  }
  return fallbackDir;
}

/** Stored bytes converted per round: bounded memory whatever the tensor. */
const CHUNK = 4 * 2 ** 20;

async function expandWeights(graph: CompactGraph, target: string, patched: PatchedTensors, opts: SessionOptions): Promise<void> {
  const from = openSync(graph.storedPath, "r");
  const to = openSync(target, "w");
  let applier: PatchApplier | undefined;
  let seen = 0;
  try {
    const storedSize = fstatSync(from).size;
    ftruncateSync(to, graph.bytes);
    // Halves go through WebAssembly SIMD where there is one (about twice as fast), the rest through expandInto.
    const simd = halfConverter(CHUNK);
    const inBuf = simd?.input ?? new Uint8Array(CHUNK);
    const outBytes = simd?.output ?? new Uint8Array(2 * CHUNK);
    const outBuf = new Float32Array(outBytes.buffer, outBytes.byteOffset, CHUNK / 2);
    /** A patched tensor's fp32 values, one buffer for all of them: a fresh one per tensor costs page faults that dominate on some VMs. */
    let whole = new Float32Array(0);
    for (const seg of graph.segments) {
      const format = storedFormat(seg.format);
      const size = format === "f32" ? 4 : 2;
      if (seg.storedLength * (4 / size) !== seg.length || seg.offset + seg.length > graph.bytes || seg.storedOffset + seg.storedLength > storedSize || seg.length % 4 !== 0) {
        throw new InternalError(`${graph.storedPath}: a segment [${seg.storedOffset}, +${seg.storedLength}] (${seg.format}) does not fit the weights file; the cache entry is damaged`);
      }
      const patch = patched.get(seg.offset);
      // A patched tensor is converted whole into memory, patched, then written; the others chunk by chunk to the file.
      let values: Float32Array | undefined;
      if (patch) {
        if (whole.length < seg.length / 4) whole = new Float32Array(seg.length / 4);
        values = whole.subarray(0, seg.length / 4);
      }
      const valueBytes = values && new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      for (let done = 0; done < seg.storedLength; ) {
        const n = Math.min(CHUNK, seg.storedLength - done);
        readFully(from, inBuf, n, seg.storedOffset + done);
        const out = format === "f32" ? inBuf.subarray(0, n) : outBytes.subarray(0, n * 2);
        const count = n / size;
        const vectorized = format === "f16" && simd ? count - (count % 8) : 0;
        if (vectorized > 0) simd!.convert(vectorized);
        if (format !== "f32" && vectorized < count) expandInto(format, inBuf.subarray(vectorized * size, n), outBuf.subarray(vectorized, count));
        const at = (done * 4) / size;
        if (valueBytes) valueBytes.set(out, at);
        else writeFully(to, out, seg.offset + at);
        done += n;
      }
      if (patch) {
        applier ??= await PatchApplier.create({ threads: opts.threads });
        const merged = await applier.apply(values!, patch.patches, patch.name);
        writeFully(to, new Uint8Array(merged.buffer, merged.byteOffset, merged.byteLength), seg.offset);
        seen++;
      }
    }
    if (seen !== patched.size) throw new InternalError(`${graph.storedPath}: ${patched.size - seen} patched tensors are not in the weights file's segments`);
  } finally {
    closeSync(from);
    closeSync(to);
    await applier?.release();
  }
}

function storedFormat(format: string): StoredFormat {
  if (format === "raw" || format === "f32") return "f32";
  if (format === "f16" || format === "bf16") return format;
  throw new InternalError(`unknown stored weights format "${format}"; the cache entry is from another version`);
}

function readFully(fd: number, buf: Uint8Array, n: number, position: number): void {
  for (let done = 0; done < n; ) {
    const got = readSync(fd, buf, done, n - done, position + done);
    if (got === 0) throw new InternalError("the cache entry's weights file ended early");
    done += got;
  }
}

function writeFully(fd: number, buf: Uint8Array, position: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, position + done);
}
