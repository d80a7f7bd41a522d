import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError } from "../../src/errors.js";
import { fileHashes, sha256File, shortHash } from "../../src/weights/hash.js";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import { removeTempDirs, tempDir } from "./safetensors-writer.js";

afterAll(removeTempDirs);

describe("checkpoint hashes", () => {
  it("streams a file spanning several chunks to the same sha256 as hashing it whole", async () => {
    const path = join(tempDir("hash"), "big.bin");
    const bytes = Buffer.alloc(9 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    writeFileSync(path, bytes);
    const seen: number[] = [];
    const sha = await sha256File(path, (n) => seen.push(n));
    expect(sha).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(seen.length).toBeGreaterThan(2);
    expect(seen.at(-1)).toBe(bytes.length);
  });

  it("gives AUTOMATIC1111's short hash: the first 10 hex digits of the sha256", async () => {
    const path = join(tempDir("hash"), "empty.safetensors");
    writeFileSync(path, "");
    // sha256 of no bytes.
    expect(await fileHashes(path)).toEqual({
      sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      shortHash: "e3b0c44298",
    });
    expect(shortHash("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")).toBe("e3b0c44298");
    expect(() => shortHash("abc")).toThrow(CheckpointError);
  });

  it("names the file it cannot read", async () => {
    const missing = join(tempDir("hash"), "missing.safetensors");
    await expect(sha256File(missing)).rejects.toThrow(CheckpointError);
    await expect(sha256File(missing)).rejects.toThrow(/missing\.safetensors: cannot read for hashing \(ENOENT\)/);
  });

  it.skipIf(!HAVE_REFERENCE)("matches the fixture manifest's sha256 of the tiny single files", async () => {
    const manifest = JSON.parse(readFileSync(ref("manifest.json"), "utf8")) as {
      files: Array<{ path: string; sha256: string }>;
    };
    for (const name of ["sd15-tiny", "sd2v-tiny"]) {
      const entry = manifest.files.find((f) => f.path === `models/${name}.ldm.safetensors`)!;
      const h = await fileHashes(ref(entry.path));
      expect(h.sha256).toBe(entry.sha256);
      expect(h.shortHash).toBe(entry.sha256.slice(0, 10));
    }
  });
});
