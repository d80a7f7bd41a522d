import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { codeDigest } from "../../src/runtime/code-digest.js";

describe("code digest", () => {
  it("changes with the source of an entry module or of anything it imports, and not with a module it does not import", () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-code-"));
    mkdirSync(join(dir, "models"));
    mkdirSync(join(dir, "onnx"));
    const write = (path: string, text: string) => writeFileSync(join(dir, path), text);
    write(
      "models/unet.ts",
      `import { conv } from "./layers.js";\nimport type { Graph } from "../onnx/graph.js";\nexport const unet = conv;\n`,
    );
    write("models/layers.ts", `export { conv } from "../onnx/builder.js";\n`);
    write("onnx/builder.ts", `export const conv = () => import("./ops.js");\n`);
    write("onnx/ops.ts", `export const op = "Conv";\n`);
    write("onnx/graph.ts", `export interface Graph { nodes: string[] }\n`);
    write("onnx/dump.ts", `export const dump = 1;\n`);
    const entry = join(dir, "models/unet.js"); // as the importing code names it
    const first = codeDigest([entry]);
    expect(codeDigest([entry])).toBe(first);
    write("onnx/dump.ts", `export const dump = 2;\n`);
    expect(codeDigest([entry])).toBe(first);
    for (const [file, text] of [
      ["onnx/ops.ts", `export const op = "ConvTranspose";\n`],
      ["onnx/graph.ts", `export interface Graph { nodes: number[] }\n`],
      ["models/layers.ts", `export { conv } from "../onnx/builder.js"; // changed\n`],
    ] as const) {
      const before = codeDigest([entry]);
      write(file, text);
      expect(codeDigest([entry]), file).not.toBe(before);
    }
  });

  it("refuses a module that is not there rather than leave it out of the digest", () => {
    const dir = mkdtempSync(join(tmpdir(), "diffuse-code-"));
    writeFileSync(join(dir, "a.ts"), `import { b } from "./b.js";\n`);
    expect(() => codeDigest([join(dir, "a.js")])).toThrow(/b\.js does not exist/);
    expect(() => codeDigest([join(dir, "gone.js")])).toThrow(/gone\.js does not exist/);
  });
});
