export { Graph, DataType, OPSET, MS_DOMAIN, numel, assertShape, type Value, type GraphIO } from "./graph.js";
export { GraphBuilder, type AttentionKind } from "./builder.js";
export { serializeGraph, type SerializeOptions } from "./serialize.js";
export { dumpGraph } from "./dump.js";
export { graphFlops, graphFlopsByGrowth } from "./flops.js";
