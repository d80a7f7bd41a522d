import { closeSync, copyFileSync, ftruncateSync, mkdirSync, openSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { InternalError } from "../errors.js";
import type { ExternalSegment } from "../onnx/serialize.js";
import { makeBuildFolder, sweepAbandoned } from "./atomic-folder.js";
import { externalTensors } from "./external-tensors.js";
import { LiveWeights, patchesByOffset, type PatchedTensors, type WeightsSource } from "./live-weights.js";
import { Session, type SessionOptions } from "./session.js";
import { StoredTensors, writeFully } from "./stored-tensors.js";
import { PatchApplier, type WeightPatches } from "./weight-patch.js";

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
 * The graph is the cached one, and nothing is written to the cache. The file stays open with the session, whose
 * LiveWeights rewrite it in place for another set of patches (live-weights.ts): never another cache entry, and
 * most often not another session.
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

/** A session on a rebuilt weights file, and what rewrites that file in place (closed with the session). */
export interface OpenedGraph {
  session: Session;
  weights: LiveWeights;
}

export async function openCompactGraph(
  graph: CompactGraph,
  name: string,
  fallbackDir: string,
  opts: SessionOptions = {},
  patches?: WeightPatches,
): Promise<OpenedGraph> {
  const roots = [...new Set([scratchRoot(graph.bytes, fallbackDir), fallbackDir])];
  const tensors = externalTensors(graph.modelPath);
  const patched = patchesByOffset(tensors, patches, graph.modelPath);
  let built: { folder: string; fd: number } | undefined;
  for (const [i, root] of roots.entries()) {
    try {
      built = await rebuildIn(root, graph, name, patched, opts.threads);
      break;
    } catch (e) {
      // /dev/shm filled up since it was checked: the cache's own folder has the disk
      if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
      if (i === roots.length - 1)
        throw new InternalError(
          `no room in ${root} to rebuild the ${(graph.bytes / 1e9).toFixed(1)} GB of weights of ${graph.modelPath}; free some space there or point $DIFFUSE_CACHE elsewhere`,
        );
    }
  }
  const { folder, fd } = built!;
  const remove = () => rmSync(folder, { recursive: true, force: true });
  let session: Session;
  try {
    session = await Session.create(join(folder, "model.onnx"), opts);
  } catch (e) {
    closeSync(fd);
    remove();
    throw e;
  }
  const weightsPath = join(folder, graph.location);
  const source: WeightsSource = { storedPath: graph.storedPath, bytes: graph.bytes, segments: graph.segments, tensors };
  const weights = new LiveWeights(fd, weightsPath, source, patched, opts.threads);
  session.onRelease(() => closeSync(fd));
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
  return { session, weights };
}

/**
 * The graph and its rebuilt weights in a new private folder under `root` (nothing left there when it fails), with
 * the weights file open for writing.
 */
async function rebuildIn(
  root: string,
  graph: CompactGraph,
  name: string,
  patched: PatchedTensors,
  threads: number | undefined,
): Promise<{ folder: string; fd: number }> {
  mkdirSync(root, { recursive: true });
  sweepAbandoned(root);
  const folder = makeBuildFolder(join(root, name));
  let fd: number | undefined;
  try {
    copyFileSync(graph.modelPath, join(folder, "model.onnx"));
    fd = openSync(join(folder, graph.location), "w");
    await expandWeights(graph, fd, patched, threads);
    return { folder, fd };
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
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

async function expandWeights(
  graph: CompactGraph,
  to: number,
  patched: PatchedTensors,
  threads: number | undefined,
): Promise<void> {
  const stored = new StoredTensors(graph.storedPath);
  const applier = new PatchApplier(threads);
  let seen = 0;
  try {
    ftruncateSync(to, graph.bytes);
    for (const seg of graph.segments) {
      const patch = patched.get(seg.offset);
      // A patched tensor is converted whole into memory, patched, then written; the others chunk by chunk to the file.
      if (!patch) {
        stored.forEachChunk(seg, graph.bytes, (bytes, at) => writeFully(to, bytes, seg.offset + at));
        continue;
      }
      const merged = applier.merge(
        seg.length / 4,
        (values) => stored.readInto(seg, graph.bytes, values),
        patch.patches,
        patch.name,
      );
      writeFully(to, new Uint8Array(merged.buffer, merged.byteOffset, merged.byteLength), seg.offset);
      seen++;
    }
    if (seen !== patched.size)
      throw new InternalError(
        `${graph.storedPath}: ${patched.size - seen} patched tensors are not in the weights file's segments`,
      );
  } finally {
    stored.close();
    await applier.close();
  }
}
