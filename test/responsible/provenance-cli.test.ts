import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodePng } from "../../src/image/codec.js";
import { crc32 } from "../../src/image/png-text.js";
import { localSigner, signImage } from "../../src/responsible/provenance/index.js";
import { runCli } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "diffuse-verify-cli-"));

async function samplePng(): Promise<Buffer> {
  const data = new Uint8Array(24 * 24 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 29) & 0xff;
  return encodePng({ width: 24, height: 24, data });
}

async function signedFile(name: string, sketch?: Buffer, seed?: bigint): Promise<string> {
  const signer = await localSigner(join(dir, "config", "diffuse", "c2pa"));
  const png = await signImage(
    await samplePng(),
    {
      model: "sd15-tiny",
      sampler: "Euler a",
      prompt: "a lighthouse at dusk",
      seed,
      ingredient: sketch,
      ingredientTitle: sketch && "sketch.png",
    },
    signer,
  );
  const path = join(dir, name);
  writeFileSync(path, png);
  return path;
}

/** Flips one byte inside the first IDAT chunk and fixes the chunk CRC, so only the C2PA hash can notice. */
function tamperPixelData(png: Buffer): Buffer {
  const out = Buffer.from(png);
  for (let pos = 8; pos < out.length; ) {
    const length = out.readUInt32BE(pos);
    if (out.toString("latin1", pos + 4, pos + 8) === "IDAT") {
      out[pos + 8 + (length >> 1)]! ^= 0x04;
      out.writeUInt32BE(crc32(out.subarray(pos + 4, pos + 8 + length)), pos + 8 + length);
      return out;
    }
    pos += 12 + length;
  }
  throw new Error("no IDAT");
}

describe("diffuse verify", () => {
  it("prints the manifest of a signed PNG, with c2pa.created as trainedAlgorithmicMedia, and exits 0", async () => {
    const path = await signedFile("signed.png", await samplePng());
    const r = await runCli(["verify", path]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("claim generator: diffuse");
    expect(r.stdout).toMatch(/c2pa\.created by diffuse/);
    expect(r.stdout).toContain(
      "digitalSourceType: http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
    );
    expect(r.stdout).toMatch(/c2pa\.ingredient\.v3: sketch\.png \(image\/png\) inputTo sha256:[0-9a-f]{64}/);
    expect(r.stdout).toContain("signer: CN=diffuse local signer");
    expect(r.stdout).toMatch(/trust: self-signed/);
    expect(r.stdout).toContain("hash binding: match");
    expect(r.stdout).toContain("validity: valid");

    const json = await runCli(["verify", path, "--json"]);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report).toMatchObject({ manifestFound: true, valid: true, aiGenerated: true, hashBinding: "match" });
    expect(report.actions[0].digitalSourceType).toBe(
      "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
    );
  });

  it("prints a manifest's 64-bit seed exactly, as text and as JSON (a seed past 2^53-1 is a CBOR uint64)", async () => {
    const path = await signedFile("big-seed.png", undefined, 2n ** 64n - 1n);
    const r = await runCli(["verify", path]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"seed":18446744073709551615');
    const json = await runCli(["verify", path, "--json"]);
    expect(json.code).toBe(0);
    expect(json.stdout).toContain('"seed": 18446744073709551615');
  });

  it("exits 3 and names the hash mismatch when a pixel byte changed after signing", async () => {
    const signed = await signedFile("to-tamper.png");
    const tampered = join(dir, "tampered.png");
    writeFileSync(tampered, tamperPixelData(readFileSync(signed)));
    const r = await runCli(["verify", tampered]);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain("validity: INVALID");
    expect(r.stdout).toContain("hash binding: mismatch");
    expect(r.stderr).toContain("hash mismatch: the image was modified after signing");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("exits 2 for a PNG without a manifest and for a file that is not an image", async () => {
    const plain = join(dir, "plain.png");
    writeFileSync(plain, await samplePng());
    const none = await runCli(["verify", plain]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/has no C2PA manifest/);
    const text = join(dir, "notes.txt");
    writeFileSync(text, "not an image");
    const notPng = await runCli(["verify", text]);
    expect(notPng.code).toBe(2);
    expect(notPng.stderr).toMatch(/notes\.txt is not a PNG, JPEG or WebP image/);
  });
});
