import { closeSync, openSync, writeSync } from "node:fs";
import onnxProto from "onnx-proto";
import { InternalError } from "../errors.js";
import { DataType, MS_DOMAIN, OPSET, type AttributeValue, type Graph, type GraphIO, type InitializerDef } from "./graph.js";

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
  externalData?: { path: string; location: string };
  /** Called after each initializer is written, for progress on big models. */
  onInitializer?: (done: number, total: number) => void;
}

/** Serializes a graph to ONNX protobuf bytes. Weights are loaded one at a time and released after writing. */
export function serializeGraph(graph: Graph, opts: SerializeOptions = {}): Uint8Array {
  const fd = opts.externalData ? openSync(opts.externalData.path, "w") : undefined;
  let offset = 0;
  const total = graph.initializers.size;
  let done = 0;
  const initializers: ITensorProto[] = [];
  try {
    for (const init of graph.initializers.values()) {
      const bytes = tensorBytes(init);
      const proto: ITensorProto = { name: init.name, dims: [...init.dims], dataType: init.dtype };
      if (fd !== undefined && bytes.length >= EXTERNAL_THRESHOLD_BYTES) {
        offset = Math.ceil(offset / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
        let written = 0;
        while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written, offset + written);
        proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        proto.externalData = [
          { key: "location", value: opts.externalData!.location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(bytes.length) },
        ];
        offset += bytes.length;
      } else {
        proto.rawData = bytes;
      }
      initializers.push(proto);
      opts.onInitializer?.(++done, total);
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "diffuse",
    opsetImport: [
      { domain: "", version: OPSET },
      { domain: MS_DOMAIN, version: 1 },
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
  return onnx.ModelProto.encode(model).finish();
}

function tensorBytes(init: InitializerDef): Uint8Array {
  const data = init.load();
  const expected = init.dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new InternalError(`initializer ${init.name}: ${data.length} values for dims [${init.dims.join(",")}]`);
  }
  const elementType = { [DataType.FLOAT]: Float32Array, [DataType.INT64]: BigInt64Array, [DataType.INT32]: Int32Array, [DataType.FLOAT16]: Uint16Array }[init.dtype as number];
  if (!elementType || !(data instanceof elementType)) throw new InternalError(`initializer ${init.name}: data does not match dtype ${init.dtype}`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
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
