/**
 * The safeguards a server runs with are the server's: an A1111 client cannot turn off the safety checker, the
 * watermark or the C2PA credentials through `override_settings`, `alwayson_scripts`, `script_name` /
 * `script_args` or the stored options, whatever names it tries. Each image still carries the checker's infotext,
 * our robust watermark and valid content credentials.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../../src/image/codec.js";
import { getPngText } from "../../src/image/png-text.js";
import { verifyImage } from "../../src/responsible/provenance/index.js";
import { detectWatermark } from "../../src/responsible/watermark/detect.js";
import { DIFFUSE_GENERATOR_ID, jobIdFromString } from "../../src/responsible/watermark/robust.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { flagsEverything } from "../helpers/safety-fixtures.js";
import { pngBase64, postJson, startServer, tempDir, waitForJob, type TestServer } from "./harness.js";

/** Every spelling of "off" a client might try, for each safeguard. */
const OVERRIDES: Record<string, unknown> = {
  enable_safety_checker: false,
  safety_checker: "None",
  "Safety checker": "off",
  nsfw_filter: false,
  censor_nsfw: false,
  filter_nsfw: false,
  watermark: false,
  enable_watermark: false,
  add_watermark: false,
  Watermark: "off",
  c2pa: false,
  provenance: false,
  enable_c2pa: false,
  content_credentials: false,
  Provenance: "off",
  enable_pnginfo: false,
};

const SCRIPTS = {
  "safety checker": { args: [false] },
  "NSFW checker": { args: [false] },
  "Safety Checker": { args: ["off"] },
  watermark: { args: [false] },
  "Invisible watermark": { args: [false] },
  c2pa: { args: [false] },
  "Content Credentials": { args: [false] },
};

const ATTEMPTS: [string, Record<string, unknown>][] = [
  ["override_settings", { override_settings: OVERRIDES, override_settings_restore_afterwards: false }],
  ["alwayson_scripts", { alwayson_scripts: SCRIPTS }],
  // The X/Y/Z plot's grid (2 cells of Steps, txt2img's and img2img's axis 4) goes out as the cells do: its own robust
  // mark readable, at 128 px cells (256x154) and at 192 px cells, where the SD release's dwtDct mark fits as well.
  // Its two alike, busy cells repeat with the mark's tile period, which hid a mark at the ordinary strength (issue 18).
  ...[128, 192].map((size): [string, Record<string, unknown>] => [
    `all of them at once, in an X/Y/Z plot of ${size} px cells`,
    {
      width: size,
      height: size,
      override_settings: OVERRIDES,
      alwayson_scripts: SCRIPTS,
      script_name: "x/y/z plot",
      script_args: [4, "2,3", [], 0, "", [], 0, "", [], true, false, false, false, false, false, false, 0, false],
    },
  ]),
];

/** Selectable scripts that do not exist here: A1111 answers 422 "Script '...' not found", and so does this server. */
const SCRIPT_NAMES: [string, Record<string, unknown>][] = [
  ["script_name (safety checker)", { script_name: "disable safety checker", script_args: [false] }],
  ["script_name (watermark)", { script_name: "no watermark", script_args: [false, false] }],
];

describe.skipIf(!HAVE_REFERENCE)("A1111 requests cannot turn the safeguards off", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  const checker = tempDir("diffuse-checker-");
  const identity = tempDir("diffuse-c2pa-");
  beforeAll(async () => {
    // A checker that flags every image, under the "flag" policy: the image is kept (so its watermark can be read)
    // and its infotext says the checker flagged it.
    const safetyChecker = flagsEverything(checker.path);
    s = await startServer({
      cacheDir: cache.path,
      loadOptions: {
        threads: 1,
        cacheDir: cache.path,
        safetyChecker,
        safetyPolicy: "flag",
        watermark: true,
        provenance: { localDir: identity.path },
      },
    });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
      checker.remove();
      identity.remove();
    }
  });

  /** What an image of the answer carries: its infotext, the watermark verdict and the credentials' verdict. */
  async function safeguardsOf(b64: string) {
    const png = Buffer.from(b64, "base64");
    const report = await verifyImage(png);
    const watermark = detectWatermark(await decodeImage(png));
    return {
      infotext: getPngText(png, "parameters") ?? "",
      watermark: watermark.verdict,
      generator: watermark.robust.payload?.generator,
      credentials: { found: report.manifestFound, valid: report.valid, aiGenerated: report.aiGenerated },
    };
  }

  const expectGuarded = (got: Awaited<ReturnType<typeof safeguardsOf>>, what: string) => {
    expect(got.infotext, what).toMatch(/Safety checker: flagged \(flag policy\)/);
    expect(got.infotext, what).not.toMatch(/Watermark: (off|none)|Provenance: off|Safety checker: off/);
    expect([got.watermark, got.generator], what).toEqual(["robust", DIFFUSE_GENERATOR_ID]);
    expect(got.credentials, what).toEqual({ found: true, valid: true, aiGenerated: true });
  };

  const base = { prompt: "a red circle", steps: 2, seed: 5, width: 128, height: 128 };

  it("a plain request gets all three (the baseline the attempts are held to)", async () => {
    const r = await fetch(`${s.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(base),
    });
    expect(r.status).toBe(200);
    expectGuarded(await safeguardsOf(((await r.json()) as { images: string[] }).images[0]!), "plain");
  });

  for (const [name, extra] of SCRIPT_NAMES) {
    it(`txt2img with ${name}: refused (422, the script is not found), nothing generated`, async () => {
      const r = await fetch(`${s.base}/sdapi/v1/txt2img`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...base, ...extra }),
      });
      expect(r.status).toBe(422);
      expect(((await r.json()) as { detail: string }).detail).toMatch(/^Script '.*' not found/);
    });
  }

  for (const [name, extra] of ATTEMPTS) {
    it(`txt2img and img2img with ${name}: the images still carry the checker's verdict, the watermark and the credentials`, async () => {
      const init = await pngBase64(128, 128, [200, 40, 40]);
      for (const [path, body] of [
        ["/sdapi/v1/txt2img", { ...base, ...extra }],
        ["/sdapi/v1/img2img", { ...base, ...extra, init_images: [init], denoising_strength: 0.6 }],
      ] as const) {
        const r = await fetch(`${s.base}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        expect(r.status, `${path} ${name}`).toBe(200);
        const json = (await r.json()) as { images: string[]; info: string };
        expect(json.images).toHaveLength(1);
        expectGuarded(await safeguardsOf(json.images[0]!), `${path} ${name}`);
        expect((JSON.parse(json.info) as { infotexts: string[] }).infotexts[0]).toMatch(/Safety checker: flagged/);
      }
    });
  }

  it("the robust watermark carries the server's job id, so a detected mark leads back to the job in the history", async () => {
    const submitted = await postJson<{ id: string }>(`${s.base}/api/v1/jobs`, base);
    expect(submitted.status).toBe(202);
    const job = await waitForJob(s.base, submitted.body.id);
    expect(job.state).toBe("done");
    const png = Buffer.from(await (await fetch(`${s.base}${job.images[0]!.url}`)).arrayBuffer());
    const mark = detectWatermark(await decodeImage(png));
    expect([mark.verdict, mark.robust.payload?.job]).toEqual(["robust", jobIdFromString(submitted.body.id)]);
  });

  it("options stored with POST /sdapi/v1/options do not turn them off either", async () => {
    const set = await fetch(`${s.base}/sdapi/v1/options`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(OVERRIDES),
    });
    expect(set.status).toBe(200);
    const r = await fetch(`${s.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(base),
    });
    expect(r.status).toBe(200);
    expectGuarded(await safeguardsOf(((await r.json()) as { images: string[] }).images[0]!), "after options");
  });
});
