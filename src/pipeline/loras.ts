import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { basename } from "node:path";
import { InputError } from "../errors.js";
import type { Graph } from "../onnx/graph.js";
import { patchForLayout } from "../runtime/stored-layout.js";
import type { TensorPatch } from "../runtime/weight-patch.js";
import type { Checkpoint } from "../weights/checkpoint.js";
import { ldmUnetModulePaths } from "../weights/ldm-keymap.js";
import type { ShapeOf } from "../weights/lora-delta.js";
import { readLora, type LoraFile, type LoraModel, type LoraSource } from "../weights/lora-file.js";
import type { LoraNetwork } from "../weights/lora-keymap.js";
import type { WeightSource } from "../weights/weight-source.js";
import type { AdapterFolder } from "./adapter-folder.js";
import type { LoraMention } from "./lora-tags.js";
import type { NetworkName, Networks, WeightChange } from "./networks.js";
import type { LoraRequest } from "./params.js";
import { StateLease } from "./state-lease.js";

/** A LoRA a generation uses: how it was named, where it is, and its two multipliers. */
export interface WantedLora {
  /** As the prompt or the caller named it (the infotext's name). */
  readonly name: string;
  readonly source: LoraSource;
  readonly textEncoder: number;
  readonly unet: number;
}

/** What merging a generation's LoRAs gives the generation. */
export interface AppliedLoras {
  /** A1111's "Lora hashes" value ("name: hash, ..."), undefined without LoRAs. */
  readonly hashes: string | undefined;
  /** Keys of the files that were not applied, one line per file. */
  readonly warnings: readonly string[];
  /** Gives the networks back: until then no other LoRA set is merged. */
  readonly release: () => void;
}

const NETWORKS: readonly LoraNetwork[] = ["unet", "text_encoder", "text_encoder_2"];

/**
 * The LoRAs merged into a pipeline's networks. A generation names the LoRAs it wants; the networks whose set of
 * (file, multiplier) changed get the new set merged as their cached weights are loaded (networks.ts,
 * compile-cache.ts): the graphs stay as they are and nothing is written to the cache. Generations that want the
 * same set share the networks; one that wants another waits for them (state-lease.ts).
 *
 * Read files are kept while in use (a file's deltas are about its size in fp32), keyed by path, size and mtime, so
 * that switching back and forth between two weights of one LoRA reads it once.
 */
export class Loras {
  private readonly files = new Map<string, LoraFile>();
  private readonly lease = new StateLease();
  private readonly model: LoraModel;

  constructor(
    private readonly checkpoint: Checkpoint,
    private readonly networks: Networks,
  ) {
    this.model = loraModel(checkpoint);
  }

  /** Reads the LoRAs (errors before any network is touched), then merges them and holds the networks for the caller. */
  async apply(wanted: readonly WantedLora[]): Promise<AppliedLoras> {
    const used = wanted.filter((w) => w.textEncoder !== 0 || w.unet !== 0);
    const read = used.map((w) => ({ w, file: this.read(w.source) }));
    // Only what this set uses is kept: a LoRA's deltas can be hundreds of MB.
    const keep = new Set(used.map((w) => identity(w.source)));
    for (const key of this.files.keys()) if (!keep.has(key)) this.files.delete(key);

    const changes = new Map<LoraNetwork, WeightChange | undefined>();
    for (const network of NETWORKS) changes.set(network, weightChange(network, read, this.model.shapeOf));
    const key = JSON.stringify(NETWORKS.map((n) => changes.get(n)?.id ?? ""));
    const release = await this.lease.acquire(key, async () => {
      for (const network of NETWORKS)
        if (this.has(network)) await this.networks.setWeightChange(network as NetworkName, changes.get(network));
    });
    const warnings = read
      .filter(({ file }) => file.unmatched.length > 0)
      .map(({ w, file }) => unmatchedWarning(w.name, file));
    // As A1111 writes them: the name as mentioned (without ":" and ","), the short hash.
    const hashes =
      read.length === 0
        ? undefined
        : read.map(({ w, file }) => `${w.name.replace(/[:,]/g, "")}: ${file.shortHash}`).join(", ");
    return { hashes, warnings, release };
  }

  private has(network: LoraNetwork): boolean {
    return network !== "text_encoder_2" || this.checkpoint.textEncoder2 !== undefined;
  }

  private read(source: LoraSource): LoraFile {
    const key = identity(source);
    let file = this.files.get(key);
    if (!file) {
      file = readLora(source, this.model);
      this.files.set(key, file);
    }
    return file;
  }
}

/** What a LoRA is read against: the model's family and every matrix and filter of its networks. */
export function loraModel(ckpt: Checkpoint): LoraModel {
  const sources = new Map<LoraNetwork, WeightSource>([
    ["unet", ckpt.unet],
    ["text_encoder", ckpt.textEncoder],
  ]);
  if (ckpt.textEncoder2) sources.set("text_encoder_2", ckpt.textEncoder2);
  const modules = new Map<LoraNetwork, Map<string, readonly number[]>>();
  for (const [network, source] of sources) {
    const m = new Map<string, readonly number[]>();
    for (const key of source.keys()) {
      const shape = source.shape(key);
      if (key.endsWith(".weight") && (shape.length === 2 || shape.length === 4))
        m.set(key.slice(0, -".weight".length), shape);
    }
    modules.set(network, m);
  }
  const shapeOf: ShapeOf = (network, key) => {
    const s = sources.get(network);
    return s?.has(key) ? s.shape(key) : undefined;
  };
  return {
    family: ckpt.config.family,
    targets: { modules, ldmUnetPaths: ldmUnetModulePaths(ckpt.config.unet, modules.get("unet")!.keys()) },
    shapeOf,
  };
}

/** A network's change: every delta of every LoRA for it, at the LoRA's multiplier for that network. */
function weightChange(
  network: LoraNetwork,
  read: readonly { w: WantedLora; file: LoraFile }[],
  shapeOf: ShapeOf,
): WeightChange | undefined {
  const parts = read
    .map(({ w, file }) => ({ file, multiplier: network === "unet" ? w.unet : w.textEncoder }))
    .filter(({ file, multiplier }) => multiplier !== 0 && file.deltas.some((d) => d.network === network));
  if (parts.length === 0) return undefined;
  return {
    id: parts.map(({ file, multiplier }) => `${file.name}[${file.sha256.slice(0, 16)}]x${multiplier}`).join(" + "),
    patches(graph: Graph) {
      const byKey = new Map<string, { delta: LoraFile["deltas"][number]; multiplier: number }[]>();
      for (const { file, multiplier } of parts) {
        for (const d of file.deltas)
          if (d.network === network) byKey.set(d.key, [...(byKey.get(d.key) ?? []), { delta: d, multiplier }]);
      }
      const patches = new Map<string, TensorPatch[]>();
      const merged = new Set<string>();
      for (const init of graph.initializers.values()) {
        const list = init.origin && byKey.get(init.origin.key);
        if (!list) continue;
        const shape = shapeOf(network, init.origin!.key)!;
        patches.set(
          init.name,
          list.map(({ delta, multiplier }) =>
            patchForLayout(
              { ...delta.delta, scale: delta.delta.scale * multiplier },
              shape,
              init.origin!.layout,
              `${delta.name} (${init.name})`,
            ),
          ),
        );
        merged.add(init.origin!.key);
      }
      const missing = [...byKey.keys()].filter((k) => !merged.has(k));
      if (missing.length > 0)
        throw new InputError(
          `the ${network} graph has no weight ${missing[0]} that ${byKey.get(missing[0]!)![0]!.delta.name} changes (${missing.length} such); this LoRA cannot be merged into it`,
        );
      return patches;
    },
  };
}

function unmatchedWarning(name: string, file: LoraFile): string {
  const examples = file.unmatched
    .slice(0, 3)
    .map((k) => `"${k}"`)
    .join(", ");
  return `LoRA ${name} (${file.origin}): ${file.unmatched.length} of its keys name nothing in this model and were not applied (e.g. ${examples})`;
}

/** What identifies a LoRA's contents cheaply: a file by path, size and modification time; bytes by their hash. */
function identity(source: LoraSource): string {
  if (typeof source !== "string") return `bytes:${createHash("sha256").update(source.bytes).digest("hex")}`;
  try {
    const s = statSync(source);
    return `file:${source}\0${s.size}\0${s.mtimeMs}`;
  } catch {
    return `file:${source}`;
  }
}

/**
 * The LoRAs a generation wants, checked before any compute: those its prompts name (looked up in the LoRA folder,
 * an unknown name listing the folder's closest), then the caller's requests.
 */
export function wantedLoras(
  mentions: readonly LoraMention[],
  requests: readonly LoraRequest[],
  folder: AdapterFolder,
): WantedLora[] {
  // A file removed or added at the folder's top since the last generation is seen (a name not found rescans anyway).
  if (
    mentions.length > 0 ||
    requests.some((r) => r?.name !== undefined && r.path === undefined && r.bytes === undefined)
  )
    folder.refreshIfChanged();
  const wanted: WantedLora[] = mentions.map((m) => ({
    name: m.name,
    source: folder.get(m.name).path,
    textEncoder: m.textEncoder,
    unet: m.unet,
  }));
  for (const [i, r] of requests.entries()) {
    const what = `loras[${i}]`;
    if (r === null || typeof r !== "object")
      throw new InputError(`${what} is not an object; give {name}, {path} or {bytes, name}, with a weight`);
    const given = [r.path !== undefined, r.bytes !== undefined].filter(Boolean).length;
    if (given > 1 || (given === 0 && typeof r.name !== "string"))
      throw new InputError(
        `${what}: give one of name (a LoRA in ${folder.dir}), path (a .safetensors or .pt file) or bytes (with a name)`,
      );
    if (r.bytes !== undefined && (!(r.bytes instanceof Uint8Array) || typeof r.name !== "string" || r.name === ""))
      throw new InputError(`${what}: bytes must be a Uint8Array, with a name for messages and the infotext`);
    if (r.path !== undefined && (typeof r.path !== "string" || r.path === ""))
      throw new InputError(`${what}: path must be the path of a .safetensors or .pt file`);
    const number = (v: unknown, field: string, fallback: number) => {
      if (v === undefined) return fallback;
      if (typeof v !== "number" || !Number.isFinite(v))
        throw new InputError(`${what}.${field} ${JSON.stringify(v)} is not a number`);
      return v;
    };
    const weight = number(r.weight, "weight", 1);
    const textEncoder = number(r.textEncoderWeight, "textEncoderWeight", weight);
    const unet = number(r.unetWeight, "unetWeight", weight);
    const source: LoraSource =
      r.bytes !== undefined
        ? { bytes: r.bytes, name: r.name! }
        : r.path !== undefined
          ? r.path
          : folder.get(r.name!).path;
    const name = r.name ?? basename(r.path!).replace(/\.(safetensors|pt|ckpt)$/i, "");
    wanted.push({ name, source, textEncoder, unet });
  }
  return wanted;
}
