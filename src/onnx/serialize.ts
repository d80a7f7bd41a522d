import { closeSync, openSync, writeSync } from "node:fs";
import onnxProto from "onnx-proto";
import { InternalError } from "../errors.js";
import {
  DataType,
  MS_DOMAIN,
  numel,
  OPSET,
  scratchBuffers,
  type AttributeValue,
  type Graph,
  type GraphIO,
  type InitializerDef,
  type ScratchBuffers,
} from "./graph.js";

const { onnx } = onnxProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;

/** IR version 8 goes with opset 17 (ONNX 1.12) and is what onnx-proto's schema describes. */
const IR_VERSION = 8;
/** Initializers below this size stay inside the protobuf even when weights go to an external file. */
const EXTERNAL_THRESHOLD_BYTES = 1024;
/** Tensor offsets in the external file are aligned so the runtime can map them directly. */
const EXTERNAL_ALIGNMENT = 4096;

export interface SerializeOptions {
  /**
   * Write weights to this file (created or truncated) and reference them as external data by `location`,
   * a path relative to where the .onnx file will live. Needed for graphs over protobuf's 2 GB limit.
   */
  externalData?: ExternalDataOptions;
  /** Called after each initializer is written, for progress on big models. */
  onInitializer?: (done: number, total: number) => void;
}

export interface ExternalDataOptions {
  path: string;
  location: string;
  /**
   * Keeps an fp32 tensor in `path` in another form (smaller, say) when it returns one. The graph still references
   * every tensor at its place in the plain layout of `location`, which the returned segments describe, so that a
   * loader can rebuild that file from `path`. Without it, `path` is that file. The bytes it returns are written
   * before it is called again (so it may reuse one buffer).
   */
  encode?: (data: Float32Array, init: InitializerDef) => { format: string; bytes: Uint8Array };
}

/** Where one external tensor is: in the plain file the graph references, and in the file written. */
export interface ExternalSegment {
  offset: number;
  length: number;
  storedOffset: number;
  storedLength: number;
  /** "raw": the bytes as the graph reads them; otherwise what `encode` returned. */
  format: string;
}

export interface WrittenGraph {
  model: Uint8Array;
  segments: ExternalSegment[];
  /** Size of the plain external file the segments rebuild (0 without external data). */
  externalBytes: number;
}

/** Serializes a graph to ONNX protobuf bytes. Weights are loaded one at a time and released after writing. */
export function serializeGraph(graph: Graph, opts: SerializeOptions = {}): Uint8Array {
  return writeGraph(graph, opts).model;
}

/** `serializeGraph`, with the layout of the external data it wrote. */
export function writeGraph(graph: Graph, opts: SerializeOptions = {}): WrittenGraph {
  const ext = opts.externalData;
  const fd = ext ? openSync(ext.path, "w") : undefined;
  let offset = 0;
  let stored = 0;
  const segments: ExternalSegment[] = [];
  const total = graph.initializers.size;
  let done = 0;
  const initializers: ITensorProto[] = [];
  // Each initializer is written (or copied) before the next is loaded, so one set of buffers serves them all.
  const scratch = scratchBuffers();
  try {
    for (const init of graph.initializers.values()) {
      const data = tensorData(init, scratch);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const proto: ITensorProto = { name: init.name, dims: [...init.dims], dataType: init.dtype };
      if (fd !== undefined && bytes.length >= EXTERNAL_THRESHOLD_BYTES) {
        offset = align(offset);
        stored = align(stored);
        const encoded =
          ext!.encode && data instanceof Float32Array ? ext!.encode(data, init) : { format: "raw", bytes };
        let written = 0;
        while (written < encoded.bytes.length)
          written += writeSync(fd, encoded.bytes, written, encoded.bytes.length - written, stored + written);
        segments.push({
          offset,
          length: bytes.length,
          storedOffset: stored,
          storedLength: encoded.bytes.length,
          format: encoded.format,
        });
        proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        proto.externalData = [
          { key: "location", value: ext!.location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(bytes.length) },
        ];
        offset += bytes.length;
        stored += encoded.bytes.length;
      } else {
        // A copy: what load() returns is only read before the next load (a layout pass may reuse one buffer).
        proto.rawData = bytes.slice();
      }
      initializers.push(proto);
      opts.onInitializer?.(++done, total);
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return { model: onnx.ModelProto.encode(modelProto(graph, initializers)).finish(), segments, externalBytes: offset };
}

/**
 * The graph as serialized, with only the names, shapes and types of its large initializers (the checkpoint's
 * weights, which are not read): what the graph computes, in a few hundred KB, for a cache key.
 */
export function graphStructure(graph: Graph): Uint8Array {
  const initializers: ITensorProto[] = [];
  for (const init of graph.initializers.values()) {
    const proto: ITensorProto = { name: init.name, dims: [...init.dims], dataType: init.dtype };
    // Small ones are the graph's constants (shapes, axes, scales): their values are part of what it computes.
    if (numel(init.dims) * BYTES_PER_ELEMENT[init.dtype as number]! < EXTERNAL_THRESHOLD_BYTES) {
      const data = tensorData(init);
      proto.rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    }
    initializers.push(proto);
  }
  return onnx.ModelProto.encode(modelProto(graph, initializers)).finish();
}

const BYTES_PER_ELEMENT: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.INT64]: 8,
  [DataType.INT32]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.BOOL]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT8]: 1,
};

function align(offset: number): number {
  return Math.ceil(offset / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
}

function modelProto(graph: Graph, initializers: ITensorProto[]): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "diffuse",
    opsetImport: [
      { domain: "", version: OPSET },
      { domain: MS_DOMAIN, version: 1 },
      ...[...new Set(graph.nodes.map((n) => n.domain ?? ""))]
        .filter((d) => d !== "" && d !== MS_DOMAIN)
        .sort()
        .map((domain) => ({ domain, version: 1 })),
    ],
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        opType: n.opType,
        name: n.name,
        input: [...n.inputs],
        output: [...n.outputs],
        domain: n.domain ?? "",
        attribute: Object.entries(n.attributes).map(([name, v]) => attribute(name, v)),
      })),
      initializer: initializers,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
  });
}

function tensorData(init: InitializerDef, scratch?: ScratchBuffers): ReturnType<InitializerDef["load"]> {
  const data = init.load(scratch);
  const expected = init.dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new InternalError(`initializer ${init.name}: ${data.length} values for dims [${init.dims.join(",")}]`);
  }
  const elementType = {
    [DataType.FLOAT]: Float32Array,
    [DataType.INT64]: BigInt64Array,
    [DataType.INT32]: Int32Array,
    [DataType.FLOAT16]: Uint16Array,
    [DataType.INT8]: Int8Array,
    [DataType.UINT8]: Uint8Array,
  }[init.dtype as number];
  if (!elementType || !(data instanceof elementType))
    throw new InternalError(`initializer ${init.name}: data does not match dtype ${init.dtype}`);
  return data;
}

function attribute(name: string, v: AttributeValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === "number") return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  if (typeof v === "string") return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ("floats" in v) return { name, type: T.FLOATS, floats: v.floats };
  if ("int" in v) return { name, type: T.INT, i: v.int };
  return { name, type: T.FLOAT, f: v.float };
}

function valueInfo(io: GraphIO) {
  return {
    name: io.name,
    type: {
      tensorType: {
        elemType: io.dtype,
        shape: { dim: io.dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
