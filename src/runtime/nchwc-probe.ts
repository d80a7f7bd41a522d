import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import onnxProto from "onnx-proto";
import { GraphBuilder } from "../onnx/builder.js";
import { DataType } from "../onnx/graph.js";
import { serializeGraph } from "../onnx/serialize.js";
import { NCHWC_DOMAIN, reorderFilter } from "./nchwc-layout.js";
import { runtimeFingerprint } from "./runtime-fingerprint.js";
import { Session } from "./session.js";

const { onnx } = onnxProto;

/**
 * The NCHWc block size to build graphs with for the installed onnxruntime on this CPU (1: no rewrite), asked of
 * onnxruntime itself: it optimizes a graph of two small convolutions whose weights are their own indices, and the
 * block size is the one for which `reorderFilter` reproduces both weights it wrote. A runtime without the layout,
 * or one whose permutation differs from ours, gets 1: it then rewrites the graph itself at load, slower but right.
 *
 * The answer is kept in `memoFile` per runtime and CPU (runtime-fingerprint.ts), so the probe (about 0.1 s) runs
 * once per machine and onnxruntime version.
 */
export async function nchwcBlockSize(memoFile: string): Promise<number> {
  const fingerprint = runtimeFingerprint();
  const memo = readMemo(memoFile);
  const known = memo[fingerprint];
  if (typeof known === "number" && Number.isInteger(known) && known >= 1) return known;
  const block = await probe();
  const fresh = { ...readMemo(memoFile), [fingerprint]: block };
  try {
    mkdirSync(dirname(memoFile), { recursive: true });
    const tmp = `${memoFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(fresh, null, 1));
    renameSync(tmp, memoFile);
  } catch {
    // only a memo: the next process probes again
  }
  return block;
}

const CANDIDATES = [4, 8, 16, 32, 64];
const WIDE: [number, number, number, number] = [64, 64, 1, 1]; // blocked input: OIHWBiBo
const NARROW: [number, number, number, number] = [64, 3, 3, 3]; // plain input with fewer channels than a block: OIHWBo

async function probe(): Promise<number> {
  const g = new GraphBuilder("nchwc-probe");
  const indices = (dims: readonly number[]) =>
    Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => i + 1);
  const wide = indices(WIDE);
  const narrow = indices(NARROW);
  g.output(
    g.conv2d(
      g.input("a", DataType.FLOAT, [1, 64, 4, 4], [1, 64, 4, 4]),
      g.initializer("wide", WIDE, () => wide),
      undefined,
    ),
    "ya",
    [1, 64, 4, 4],
  );
  g.output(
    g.conv2d(
      g.input("b", DataType.FLOAT, [1, 3, 4, 4], [1, 3, 4, 4]),
      g.initializer("narrow", NARROW, () => narrow),
      undefined,
    ),
    "yb",
    [1, 64, 4, 4],
  );
  const dir = mkdtempSync(join(tmpdir(), "diffuse-nchwc-probe-"));
  try {
    const saved = join(dir, "optimized.onnx");
    const session = await Session.create(serializeGraph(g), {
      threads: 1,
      optimization: "all",
      saveOptimized: { modelPath: saved },
    });
    await session.release();
    const model = onnx.ModelProto.decode(readFileSync(saved));
    const graph = model.graph!;
    const weightOf = (dims: readonly number[]): Float32Array | undefined => {
      for (const node of graph.node ?? []) {
        if (node.domain !== NCHWC_DOMAIN || node.opType !== "Conv") continue;
        const init = graph.initializer?.find((t) => t.name === node.input?.[1]);
        if (!init?.rawData || init.dims?.map(Number).join(",") !== dims.join(",")) continue;
        const raw = init.rawData;
        return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      }
      return undefined;
    };
    const gotWide = weightOf(WIDE);
    const gotNarrow = weightOf(NARROW);
    if (!gotWide || !gotNarrow) return 1;
    for (const block of CANDIDATES) {
      if (
        same(reorderFilter(wide, WIDE, block, "OIHWBiBo"), gotWide) &&
        same(reorderFilter(narrow, NARROW, block, "OIHWBo"), gotNarrow)
      )
        return block;
    }
    return 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function same(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function readMemo(file: string): Record<string, unknown> {
  try {
    const json = JSON.parse(readFileSync(file, "utf8"));
    return json && typeof json === "object" && !Array.isArray(json) ? json : {};
  } catch {
    return {};
  }
}
