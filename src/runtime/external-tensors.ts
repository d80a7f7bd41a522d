import { readFileSync } from "node:fs";
import onnxProto from "onnx-proto";
import { InternalError } from "../errors.js";

const { onnx } = onnxProto;
type GraphProto = NonNullable<ReturnType<typeof onnx.ModelProto.decode>["graph"]>;

/** Where one initializer's data sits in the graph's external weights file. */
export interface ExternalTensor {
  readonly offset: number;
  readonly length: number;
  /**
   * Every node that reads it computes from constants alone (a filter folded from it, GraphBuilder.upsampleConv3x3):
   * onnxruntime folds those nodes into tensors of its own at load, so whatever the file holds afterwards, the session
   * computes with what the tensor was then.
   */
  readonly foldedAtLoad: boolean;
}

/**
 * The external initializers of an .onnx file by name, read from the graph itself (what onnxruntime reads too), so
 * that a tensor can be found in the weights file by the name the builders gave it.
 */
export function externalTensors(modelPath: string): Map<string, ExternalTensor> {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const folded = foldedInitializers(model.graph?.initializer ?? [], model.graph?.node ?? []);
  const found = new Map<string, ExternalTensor>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const field = (key: string) => t.externalData?.find((e) => e.key === key)?.value;
    const offset = Number(field("offset") ?? 0);
    const length = Number(field("length"));
    if (!t.name || !Number.isSafeInteger(offset) || !Number.isSafeInteger(length))
      throw new InternalError(`${modelPath}: initializer ${t.name ?? "?"} has no readable external data location`);
    found.set(t.name, { offset, length, foldedAtLoad: folded.has(t.name) });
  }
  return found;
}

/** The initializers whose every reader has only constant inputs (nodes come in topological order). */
function foldedInitializers(
  initializers: NonNullable<GraphProto["initializer"]>,
  nodes: NonNullable<GraphProto["node"]>,
): Set<string> {
  const constant = new Set(initializers.map((t) => t.name ?? ""));
  const readByRuntime = new Set<string>();
  for (const node of nodes) {
    const inputs = (node.input ?? []).filter((x) => x !== "");
    if (inputs.every((x) => constant.has(x))) for (const out of node.output ?? []) constant.add(out);
    else for (const x of inputs) readByRuntime.add(x);
  }
  const read = new Set(nodes.flatMap((n) => n.input ?? []));
  return new Set(initializers.map((t) => t.name ?? "").filter((name) => read.has(name) && !readByRuntime.has(name)));
}
