import { brighten, crop as cropAt, halve, jpeg } from "../../scripts/watermark-attacks.js";
import { beforeAll, describe, expect, it } from "vitest";
import type { RgbImage } from "../../src/image/codec.js";
import { InputError } from "../../src/errors.js";
import { convolutionalEncode, viterbiDecode } from "../../src/responsible/watermark/convolutional-code.js";
import { detectWatermark, hypergeometricUpperTail } from "../../src/responsible/watermark/detect.js";
import { embedDwtDct, SD1_WATERMARK_BITS } from "../../src/responsible/watermark/dwt-dct.js";
import {
  DIFFUSE_GENERATOR_ID,
  jobIdFromString,
  psnr,
  RobustWatermark,
  SYNC_THRESHOLD,
  type RobustPayload,
} from "../../src/responsible/watermark/robust.js";
import { busyPicture } from "../helpers/busy-picture.js";

/** Deterministic pseudo-random numbers for the test pictures. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 32;
  };
}

/** A gradient with soft discs, optionally with film grain of the given amplitude: a smooth and a busy picture. */
function picture(seed: number, width: number, height: number, grain: number): RgbImage {
  const rnd = seeded(seed);
  const discs = Array.from({ length: 6 }, () => ({
    x: rnd() * width,
    y: rnd() * height,
    r: 30 + rnd() * 90,
    c: [rnd() * 255, rnd() * 255, rnd() * 255],
  }));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let rgb = [40 + (180 * x) / width, 60 + (120 * y) / height, 200 - (150 * x) / width];
      for (const d of discs) {
        const a = Math.min(1, Math.max(0, (d.r - Math.hypot(x - d.x, y - d.y)) / 3));
        rgb = rgb.map((v, c) => v * (1 - a) + d.c[c]! * a);
      }
      const n = (rnd() - 0.5) * grain;
      for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(rgb[c]! + n)));
    }
  }
  return { width, height, data };
}

/** Keeps 90 % of the width and of the height, off-centre. */
const crop = (image: RgbImage) => cropAt(image, 0.3, 0.8);

const ATTACKS: Record<string, (image: RgbImage) => Promise<RgbImage>> = {
  "no attack": async (image) => image,
  "JPEG quality 50": (image) => jpeg(image, 50),
  "resize to 0.5x": halve,
  "a 10% crop": crop,
  "brightness +20%": brighten,
  "crop, resize 0.5x, brightness +20% and JPEG 75 together": async (image) =>
    jpeg(await brighten(await halve(await crop(image))), 75),
};

describe("robust watermark", () => {
  const watermark = new RobustWatermark();
  const cases = [
    {
      name: "a smooth 512x512 picture",
      source: picture(1, 512, 512, 0),
      payload: { generator: DIFFUSE_GENERATOR_ID, job: jobIdFromString("job-a") },
    },
    {
      name: "a grainy 640x512 picture",
      source: picture(2, 640, 512, 50),
      payload: { generator: DIFFUSE_GENERATOR_ID, job: 0xdeadbeef },
    },
  ];
  const marked = new Map<string, RgbImage>();
  const attacked = new Map<string, RgbImage>();

  beforeAll(async () => {
    for (const c of cases) {
      const m = watermark.embed(c.source, c.payload);
      marked.set(c.name, m);
      for (const [attack, apply] of Object.entries(ATTACKS)) attacked.set(`${c.name}/${attack}`, await apply(m));
    }
  });

  for (const c of cases) {
    describe(c.name, () => {
      it("stays within PSNR 42 dB of the unmarked picture", () => {
        expect(psnr(c.source.data, marked.get(c.name)!.data)).toBeGreaterThanOrEqual(42);
      });

      for (const attack of Object.keys(ATTACKS)) {
        it(`recovers the exact payload after ${attack}`, () => {
          const found = watermark.detect(attacked.get(`${c.name}/${attack}`)!);
          expect(found.found).toBe(true);
          expect(found.payload).toEqual<RobustPayload>(c.payload);
          expect(found.syncScore).toBeGreaterThan(SYNC_THRESHOLD);
        });
      }
    });
  }

  it("finds nothing in unmarked pictures", () => {
    for (const image of [cases[0]!.source, cases[1]!.source, picture(3, 768, 512, 10)]) {
      const result = watermark.detect(image);
      expect(result.found).toBe(false);
      expect(result.present).toBe(false);
      expect(result.syncScore).toBeLessThan(SYNC_THRESHOLD);
    }
  });

  it("cannot be read without the key it was made with", () => {
    const result = new RobustWatermark("some other key").detect(marked.get(cases[0]!.name)!);
    expect(result.found).toBe(false);
    expect(result.syncScore).toBeLessThan(SYNC_THRESHOLD);
  });

  describe("a busy picture that repeats with the mark's tile period (two alike halves, as a grid of two cells)", () => {
    // The detector folds the halves onto each other to add the mark up; this picture adds up as coherently, and is
    // busy at the mark's scale: at the ordinary strength nothing of the mark was read, whatever the job.
    const half = busyPicture(256, 256, 2, 4);
    const source: RgbImage = { width: 512, height: 256, data: new Uint8Array(512 * 256 * 3) };
    for (let y = 0; y < 256; y++)
      for (const x0 of [0, 256]) source.data.set(half.data.subarray(y * 768, (y + 1) * 768), (y * 512 + x0) * 3);
    const jobs = ["repeat-a", "repeat-b", "repeat-c"];
    const strengthened = new Map<string, RgbImage>();
    beforeAll(() => {
      for (const job of jobs)
        strengthened.set(job, watermark.embed(source, { generator: DIFFUSE_GENERATOR_ID, job: jobIdFromString(job) }));
    });

    it("is strengthened, within PSNR 36 dB", () => {
      for (const job of jobs) {
        const q = psnr(source.data, strengthened.get(job)!.data);
        expect(q, job).toBeGreaterThanOrEqual(36);
        expect(q, job).toBeLessThan(42);
      }
    });

    for (const attack of ["no attack", "JPEG quality 50", "resize to 0.5x"])
      it(`gives back the exact payload after ${attack}, for every job tried`, async () => {
        const got: unknown[] = [];
        for (const job of jobs)
          got.push([job, watermark.detect(await ATTACKS[attack]!(strengthened.get(job)!)).payload]);
        expect(got).toEqual(jobs.map((job) => [job, { generator: DIFFUSE_GENERATOR_ID, job: jobIdFromString(job) }]));
      });
  });

  it("refuses payload fields that do not fit their 16 and 32 bits", () => {
    expect(() => watermark.embed(cases[0]!.source, { generator: 0x10000, job: 1 })).toThrow(InputError);
    expect(() => watermark.embed(cases[0]!.source, { generator: 1, job: -1 })).toThrow(InputError);
  });
});

describe("convolutional code", () => {
  it("decodes a message whose soft values are noisy and partly wrong", () => {
    const rnd = seeded(9);
    const message = Array.from({ length: 64 }, () => (rnd() < 0.5 ? 1 : 0));
    const soft = convolutionalEncode(message).map((b, i) => (b ? 1 : -1) * (i % 7 === 0 ? -0.8 : 1) + (rnd() - 0.5));
    expect(viterbiDecode(soft, 64)).toEqual(message);
  });
});

describe("detectWatermark", () => {
  it("reports our robust mark with its payload and a confidence near 1", () => {
    const job = jobIdFromString("job-b");
    const report = detectWatermark(
      new RobustWatermark().embed(picture(4, 512, 512, 0), { generator: DIFFUSE_GENERATOR_ID, job }),
    );
    expect(report.verdict).toBe("robust");
    expect(report.robust.payload).toEqual({ generator: DIFFUSE_GENERATOR_ID, job });
    expect(report.confidence).toBeGreaterThan(0.999999);
    expect(report.summary).toContain("diffuse");
  });

  it("reports Stable Diffusion 1's dwtDct mark on an image it marked, and nothing on the unmarked one", () => {
    const source = picture(5, 512, 512, 0);
    const report = detectWatermark(embedDwtDct(source, SD1_WATERMARK_BITS));
    expect(report.verdict).toBe("dwtDct-sd1");
    expect(report.confidence).toBeGreaterThan(0.9999);
    const unmarked = detectWatermark(source);
    expect(unmarked.verdict).toBe("none");
    expect(unmarked.confidence).toBe(0);
  });

  it("computes the chance agreement of dwtDct bits as a hypergeometric tail", () => {
    // 4 positions, 2 message ones, 2 decoded ones: both land on the message's ones in 1 of 6 placements.
    expect(hypergeometricUpperTail(4, 2, 2, 2)).toBeCloseTo(1 / 6, 12);
    expect(hypergeometricUpperTail(4, 2, 2, 0)).toBeCloseTo(1, 12);
  });
});
