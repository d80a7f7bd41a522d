import { fstatSync } from "node:fs";
import { InternalError } from "../errors.js";
import type { ExternalSegment } from "../onnx/serialize.js";
import type { ExternalTensor } from "./external-tensors.js";
import { fileMappings } from "./file-mappings.js";
import { StoredTensors, writeFully } from "./stored-tensors.js";
import { PatchApplier, type TensorPatch, type WeightPatches } from "./weight-patch.js";

/** The patches of each tensor, by its offset in the fp32 file (segments are found by offset). */
export type PatchedTensors = ReadonlyMap<number, { name: string; patches: readonly TensorPatch[] }>;

/** What a session's private weights file was rebuilt from: the cache entry's stored weights and their layout. */
export interface WeightsSource {
  /** The cache entry's weights, in their stored forms. */
  readonly storedPath: string;
  /** Size of the fp32 file. */
  readonly bytes: number;
  readonly segments: readonly ExternalSegment[];
  /** The graph's external initializers by name. */
  readonly tensors: ReadonlyMap<string, ExternalTensor>;
}

/** The pages tensors are aligned to in the weights file (onnx/serialize.ts): no two tensors share a 4 KiB page. */
const PAGE = 4096;

/**
 * The private fp32 weights file an open session maps (expanded-weights.ts), rewritten in place so that the session
 * computes with other weights without being reopened: a LoRA switch then costs the products and writes of the
 * tensors it changes, not a rebuild of every weight and a new onnxruntime session.
 *
 * Why this holds, and where it does not: onnxruntime maps each external initializer from the file (a private,
 * copy-on-write mapping of that tensor's pages) and computes from those pages, unless an optimizer replaced the
 * tensor with a copy of its own at load (a convolution with few output channels that it rewrites into its blocked
 * layout, say: it then unmaps the tensor). On Linux a page of a private file mapping that was never written to is
 * the file's own page, so a write to the file shows through it. A tensor is therefore rewritten only when
 * /proc/self/smaps shows a mapping of this file that starts at the tensor and covers it, in 4 KiB pages (so it
 * maps nothing of another tensor), none of them copied on write; otherwise (another system, a tensor the runtime
 * copied) `rewrite` changes nothing and says so, and the caller reopens the session.
 *
 * Each rewritten tensor is rebuilt from the cache entry's stored weights with the new patches added, as
 * openCompactGraph builds it: the weights are bit for bit those of a session opened with the same patches.
 */
export class LiveWeights {
  private applied: PatchedTensors;

  constructor(
    private readonly fd: number,
    /** Where the file was created (it may be unlinked since: the mappings keep it). */
    private readonly path: string,
    private readonly source: WeightsSource,
    applied: PatchedTensors,
    private readonly threads?: number,
  ) {
    this.applied = applied;
  }

  /**
   * Makes the session's weights those of the cache entry with `patches` added. False when a tensor to rewrite is
   * not read in place by the runtime (nothing was written then): the session must be reopened with the patches.
   * After a failure the file holds a mix of both sets, and the session must be dropped.
   */
  async rewrite(patches: WeightPatches): Promise<boolean> {
    const next = patchesByOffset(this.source.tensors, patches, this.path);
    const targets = [...new Set([...this.applied.keys(), ...next.keys()])].sort((a, b) => a - b);
    if (targets.length === 0) return true;
    const segments = new Map(this.source.segments.map((s) => [s.offset, s]));
    // A tensor folded into another at load is not what the session computes with: rewriting it would change nothing.
    const folded = new Set([...this.source.tensors.values()].filter((t) => t.foldedAtLoad).map((t) => t.offset));
    if (targets.some((offset) => folded.has(offset))) return false;
    if (!this.readInPlace(targets.map((offset) => segments.get(offset)!))) return false;
    let stored: StoredTensors;
    try {
      stored = new StoredTensors(this.source.storedPath);
    } catch {
      return false; // the cache entry was removed meanwhile: reopening rebuilds it
    }
    // Nothing is known of the file until every target is written.
    this.applied = new Map([...this.applied, ...next].map(([offset]) => [offset, { name: "?", patches: [] }]));
    const applier = new PatchApplier(this.threads);
    try {
      for (const offset of targets) {
        const seg = segments.get(offset);
        if (!seg)
          throw new InternalError(`${this.source.storedPath}: no segment at offset ${offset} of the weights file`);
        const patch = next.get(offset);
        const merged = applier.merge(
          seg.length / 4,
          (values) => stored.readInto(seg, this.source.bytes, values),
          patch?.patches ?? [],
          patch?.name ?? `the tensor at ${offset}`,
        );
        writeFully(this.fd, new Uint8Array(merged.buffer, merged.byteOffset, merged.byteLength), offset);
      }
    } finally {
      stored.close();
      await applier.close();
    }
    this.applied = next;
    return true;
  }

  /** Whether the runtime computes from this file's own pages for every one of `segments` (see the class). */
  private readInPlace(segments: readonly (ExternalSegment | undefined)[]): boolean {
    if (segments.some((s) => s === undefined)) return false;
    const mappings = fileMappings(this.path, fstatSync(this.fd).ino);
    if (!mappings) return false;
    const usable = new Map<number, number>();
    for (const m of mappings) {
      if (m.pageSize !== PAGE || m.privatePages) continue;
      usable.set(m.offset, Math.max(usable.get(m.offset) ?? 0, m.length));
    }
    return segments.every((s) => (usable.get(s!.offset) ?? 0) >= s!.length);
  }
}

/** `patches` by the offset of their tensor in the fp32 file. */
export function patchesByOffset(
  tensors: ReadonlyMap<string, ExternalTensor>,
  patches: WeightPatches | undefined,
  what: string,
): PatchedTensors {
  const out = new Map<number, { name: string; patches: readonly TensorPatch[] }>();
  if (!patches || patches.size === 0) return out;
  for (const [name, list] of patches) {
    const t = tensors.get(name);
    // Only weights big enough to be external are patched; the builders keep every checkpoint weight there.
    if (!t) throw new InternalError(`${what}: no external weight named ${name} to patch`);
    if (list.length > 0) out.set(t.offset, { name, patches: list });
  }
  return out;
}
