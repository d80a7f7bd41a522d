/**
 * Textual-inversion embeddings saved by torch (A1111's .pt, diffusers' learned_embeds.bin) are read through the
 * restricted pickle reader, to the same vectors as the safetensors form; a malicious one is refused by name.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UnsafePickleError } from "../../src/errors.js";
import { readEmbedding } from "../../src/weights/embedding-file.js";
import { goldenAt, OWN_FIXTURES } from "../helpers/fixtures.js";
import { removeTempDirs, tempDir } from "./safetensors-writer.js";
import { pickle, str, torchZip } from "./torch-writer.js";

afterAll(removeTempDirs);

const dir = join(OWN_FIXTURES, "embeddings");
const values = goldenAt(join(dir, "values.safetensors"));

describe("pickled textual-inversion embeddings", () => {
  it("A1111's .pt (string_to_param) reads to its vectors, named by the file", () => {
    const e = readEmbedding(join(dir, "tiny-a1111.pt"));
    expect(e.name).toBe("tiny-a1111");
    expect(e.vectors).toBe(2);
    expect(e.shape).toBe(32);
    expect([...e.parts.get("single")!.data]).toEqual([...values.get("a1111")]);
  });

  it("diffusers' learned_embeds.bin ({token: vector}) reads to its one vector", () => {
    const e = readEmbedding(join(dir, "tiny-diffusers.bin"));
    expect(e.name).toBe("tiny-diffusers");
    expect(e.vectors).toBe(1);
    expect([...e.parts.get("single")!.data]).toEqual([...values.get("diffusers")]);
  });

  it("a .pt embedding that imports os.system is refused naming it", () => {
    const path = join(tempDir("evil-ti"), "evil.pt");
    writeFileSync(path, torchZip(pickle(`cos\nsystem\n(${str("id")}tR`)));
    let error: unknown;
    try {
      readEmbedding(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnsafePickleError);
    expect((error as UnsafePickleError).offending).toBe("os.system");
    expect((error as Error).message).toContain(`${path}: the pickle imports os.system`);
  });
});
