import { readFileSync } from "node:fs";
import onnxProto from "onnx-proto";
import { InternalError } from "../errors.js";

const { onnx } = onnxProto;

/** Where one initializer's data sits in the graph's external weights file. */
export interface ExternalTensor {
  readonly offset: number;
  readonly length: number;
}

/**
 * The external initializers of an .onnx file by name, read from the graph itself (what onnxruntime reads too), so
 * that a tensor can be found in the weights file by the name the builders gave it.
 */
export function externalTensors(modelPath: string): Map<string, ExternalTensor> {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const found = new Map<string, ExternalTensor>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const field = (key: string) => t.externalData?.find((e) => e.key === key)?.value;
    const offset = Number(field("offset") ?? 0);
    const length = Number(field("length"));
    if (!t.name || !Number.isSafeInteger(offset) || !Number.isSafeInteger(length))
      throw new InternalError(`${modelPath}: initializer ${t.name ?? "?"} has no readable external data location`);
    found.set(t.name, { offset, length });
  }
  return found;
}
