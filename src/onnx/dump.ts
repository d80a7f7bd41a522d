import type { Graph } from "./graph.js";

/**
 * A readable listing of a graph: inputs, initializers with their shapes, then one line per node
 * `name = OpType(inputs) attrs`. Used by tests and for debugging a builder against the reference module tree.
 */
export function dumpGraph(graph: Graph, opts: { initializers?: boolean } = {}): string {
  const lines: string[] = [`graph ${graph.name}`];
  for (const i of graph.inputs) lines.push(`  input  ${i.name} [${i.dims.join(",")}]`);
  for (const o of graph.outputs) lines.push(`  output ${o.name} [${o.dims.join(",")}]`);
  if (opts.initializers ?? true) {
    for (const init of graph.initializers.values()) lines.push(`  init   ${init.name} [${init.dims.join(",")}]`);
  }
  for (const n of graph.nodes) {
    const attrs = Object.entries(n.attributes)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(" ");
    const domain = n.domain ? `${n.domain}.` : "";
    lines.push(`  ${n.outputs.join(", ")} = ${domain}${n.opType}(${n.inputs.join(", ")})${attrs ? " " + attrs : ""}`);
  }
  return lines.join("\n");
}
