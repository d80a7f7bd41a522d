import { cpSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generatorSources, sourceDigest } from "../../scripts/shapes/make-dataset.js";

const SHAPES = resolve(import.meta.dirname, "../../scripts/shapes");

describe("the dataset's source digest", () => {
  const copy = mkdtempSync(join(tmpdir(), "diffuse-shapes-src-"));
  cpSync(SHAPES, copy, { recursive: true });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  it("covers the scene generator's modules and nothing else", () => {
    const sources = generatorSources(SHAPES);
    for (const f of ["make-dataset.ts", "scene.ts", "caption.ts", "geometry.ts", "held-out.ts", "prng.ts", "world.ts"])
      expect(sources).toContain(f);
    for (const f of ["judge.ts", "eval.ts", "sketch.ts"]) expect(sources).not.toContain(f);
  });

  it("changes when a generator module changes, not when the judge or a new unrelated file does", () => {
    const before = sourceDigest(copy);
    appendFileSync(join(copy, "judge.ts"), "\n// edited\n");
    writeFileSync(join(copy, "unrelated.ts"), "export const x = 1;\n");
    expect(sourceDigest(copy)).toBe(before);
    appendFileSync(join(copy, "caption.ts"), "\n// edited\n");
    expect(sourceDigest(copy)).not.toBe(before);
  });
});
