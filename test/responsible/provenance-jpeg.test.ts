import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JPEG } from "@trustnxt/c2pa-ts/asset";
import sharp from "sharp";
import { InputError } from "../../src/errors.js";
import { encodeImage } from "../../src/image/encode-image.js";
import { readImageParameters } from "../../src/image/image-parameters.js";
import {
  canCarryCredentials,
  localSigner,
  signImage,
  verifyImage,
  type ProvenanceInfo,
} from "../../src/responsible/provenance/index.js";

const INFO: ProvenanceInfo = {
  model: "sd15-tiny",
  sampler: "Euler a",
  prompt: "a red fox in the snow",
  seed: 42,
  steps: 20,
  cfgScale: 7,
};
const PARAMETERS = "a red fox in the snow\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 48x32";
const signer = () => localSigner(join(mkdtempSync(join(tmpdir(), "diffuse-c2pa-jpeg-")), "c2pa"));
const image = {
  width: 48,
  height: 32,
  data: Uint8Array.from({ length: 48 * 32 * 3 }, (_, i) => (i * 37 + (i >> 7)) & 0xff),
};

/** The offset of the first byte of entropy-coded data (after the SOS segment's header). */
function scanStart(jpeg: Buffer): number {
  for (let pos = 2; pos + 4 <= jpeg.length; pos += 2 + jpeg.readUInt16BE(pos + 2)) {
    if (jpeg[pos + 1] === 0xda) return pos + 2 + jpeg.readUInt16BE(pos + 2);
  }
  throw new Error("no SOS");
}

describe("C2PA provenance of JPEG outputs", () => {
  it("signs a JPEG (APP11 segments) that verifies, and keeps its EXIF parameters readable", async () => {
    const jpeg = await encodeImage(image, "jpeg", PARAMETERS);
    const signed = await signImage(jpeg, INFO, await signer());
    expect(new JPEG(signed).getManifestJUMBF()).toBeDefined();
    expect((await sharp(signed).metadata()).format).toBe("jpeg");
    expect((await readImageParameters(signed)).parameters).toBe(PARAMETERS);
    const report = await verifyImage(signed);
    expect(report.failures).toEqual([]);
    expect(report).toMatchObject({
      manifestFound: true,
      valid: true,
      signatureValid: true,
      hashBinding: "match",
      aiGenerated: true,
    });
    expect(report.actions[0]!.parameters["org.diffuse.generation"]).toMatchObject({
      prompt: "a red fox in the snow",
      seed: 42,
    });
  });

  it("reports a hash mismatch when a byte of the compressed image changes after signing", async () => {
    const signed = Buffer.from(await signImage(await encodeImage(image, "jpeg", PARAMETERS), INFO, await signer()));
    const at = scanStart(signed) + 8;
    signed[at] = signed[at]! ^ 0x01;
    const report = await verifyImage(signed);
    expect(report.valid).toBe(false);
    expect(report.hashBinding).toBe("mismatch");
  });

  it("WebP cannot carry credentials: signing refuses with an InputError, verifying reports no manifest", async () => {
    expect(canCarryCredentials("png")).toBe(true);
    expect(canCarryCredentials("jpeg")).toBe(true);
    expect(canCarryCredentials("webp")).toBe(false);
    const webp = await encodeImage(image, "webp", PARAMETERS);
    await expect(signImage(webp, INFO, await signer())).rejects.toThrow(InputError);
    await expect(signImage(webp, INFO, await signer())).rejects.toThrow(/PNG and JPEG/);
    expect(await verifyImage(webp)).toMatchObject({ manifestFound: false, valid: false });
  });
});
