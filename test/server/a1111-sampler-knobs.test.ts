/**
 * A1111's sampler knobs on /sdapi/v1: eta from the request or its eta_ancestral / eta_ddim setting, the eta noise
 * seed delta from override_settings or the stored options, s_noise and the churn fields, as A1111 takes them
 * (a1111-sampler-knobs.ts); the infotext's Eta / ENSD read back by png-info into a request that makes the same
 * image; and churn refused with a 422 naming it rather than ignored, on both APIs.
 */
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { A1111Error } from "../../src/server/a1111-mapping.js";
import { A1111Txt2Img } from "../../src/server/a1111-schema.js";
import { a1111SamplerKnobs } from "../../src/server/a1111-sampler-knobs.js";
import { embeddedServerWithoutWatermark, postJson } from "./harness.js";

const knobs = (body: Record<string, unknown>, sampler = "Euler a", options: Record<string, unknown> = {}) =>
  a1111SamplerKnobs(A1111Txt2Img.parse(body), sampler, options);

describe("where A1111 takes each knob from", () => {
  it("eta: the request's, else eta_ancestral (eta_ddim for DDIM) from override_settings, else the stored option", () => {
    expect(knobs({ eta: 0.3, override_settings: { eta_ancestral: 0.7 } })).toEqual({ eta: 0.3 });
    expect(knobs({ eta: null, override_settings: { eta_ancestral: 0.7 } })).toEqual({ eta: 0.7 });
    expect(knobs({}, "Euler a", { eta_ancestral: 0.2 })).toEqual({ eta: 0.2 });
    expect(knobs({ override_settings: { eta_ancestral: 0.7, eta_ddim: 0.4 } }, "DDIM")).toEqual({ eta: 0.4 });
    expect(knobs({})).toEqual({});
  });

  it("ENSD: override_settings' eta_noise_seed_delta, else the stored option's; 0 is off", () => {
    expect(
      knobs({ override_settings: { eta_noise_seed_delta: 31337 } }, "Euler a", { eta_noise_seed_delta: 5 }),
    ).toEqual({ eta_noise_seed_delta: 31337 });
    expect(knobs({}, "Euler a", { eta_noise_seed_delta: 31337 })).toEqual({ eta_noise_seed_delta: 31337 });
    expect(knobs({ override_settings: { eta_noise_seed_delta: 0 } }, "Euler a", { eta_noise_seed_delta: 5 })).toEqual(
      {},
    );
  });

  it("s_noise and the churn: the setting (override_settings) over the request's field, as A1111 1.6+", () => {
    expect(knobs({ s_noise: 0.9, s_churn: 0.1 })).toEqual({ s_noise: 0.9, s_churn: 0.1 });
    expect(knobs({ s_noise: 0.9, override_settings: { s_noise: 0.5 } })).toEqual({ s_noise: 0.5 });
  });

  it("a setting of the wrong type is a 422 that names it", () => {
    const bad = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof A1111Error ? `${e.status} ${e.message}` : String(e);
      }
      return "no error";
    };
    expect(bad(() => knobs({ override_settings: { eta_noise_seed_delta: "x" } }))).toMatch(
      /^422 override_settings.eta_noise_seed_delta: "x" must be a number/,
    );
    expect(bad(() => knobs({ override_settings: { eta_noise_seed_delta: 1.5 } }))).toMatch(/^422 eta_noise_seed_delta/);
    expect(bad(() => knobs({}, "Euler a", { eta_ancestral: -1 }))).toMatch(/^422 option eta_ancestral/);
  });
});

type Txt2Img = { images: string[]; info: string; parameters: Record<string, unknown> };

/** An image's pixels, comparable as a string (the PNG's metadata differs from job to job). */
const pixels = async (b64: string) => (await sharp(Buffer.from(b64, "base64")).raw().toBuffer()).toString("base64");

describe("A1111 txt2img with eta, ENSD and churn on the embedded model", () => {
  const started = embeddedServerWithoutWatermark();
  const BODY = { prompt: "a blue square", steps: 3, seed: 11, width: 64, height: 64, sampler_name: "Euler a" };
  const txt2img = async (body: Record<string, unknown>) => {
    const r = await postJson<Txt2Img>(`${started.server.base}/sdapi/v1/txt2img`, { ...BODY, ...body });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body;
  };

  it("writes Eta and ENSD in the infotext; png-info's parameters make the same image, and ENSD changes it", async () => {
    const r = await txt2img({ eta: 0.5, override_settings: { eta_noise_seed_delta: 31337 } });
    const info = JSON.parse(r.info) as { infotexts: string[]; extra_generation_params: Record<string, unknown> };
    expect(info.extra_generation_params).toMatchObject({ Eta: 0.5 });
    const infotext = info.infotexts[0]!;
    expect(infotext).toMatch(/Eta: 0\.5/);
    expect(infotext).toMatch(/ENSD: 31337/);
    const png = await postJson<{ parameters: Record<string, string> }>(`${started.server.base}/sdapi/v1/png-info`, {
      image: r.images[0],
    });
    const p = png.body.parameters;
    expect([p["Eta"], p["ENSD"]]).toEqual(["0.5", "31337"]);
    const again = await txt2img({
      eta: Number(p["Eta"]),
      override_settings: { eta_noise_seed_delta: Number(p["ENSD"]) },
    });
    expect(await pixels(again.images[0]!)).toBe(await pixels(r.images[0]!));
    const withoutDelta = await txt2img({ eta: 0.5 });
    expect(await pixels(withoutDelta.images[0]!)).not.toBe(await pixels(r.images[0]!));
  });

  it("takes ENSD from the options stored with POST /sdapi/v1/options, as A1111's setting", async () => {
    const viaOverride = await txt2img({ override_settings: { eta_noise_seed_delta: 31337 } });
    const plain = await txt2img({});
    expect(await pixels(plain.images[0]!)).not.toBe(await pixels(viaOverride.images[0]!));
    expect((await postJson(`${started.server.base}/sdapi/v1/options`, { eta_noise_seed_delta: 31337 })).status).toBe(
      200,
    );
    try {
      const viaOption = await txt2img({});
      expect(await pixels(viaOption.images[0]!)).toBe(await pixels(viaOverride.images[0]!));
    } finally {
      await postJson(`${started.server.base}/sdapi/v1/options`, { eta_noise_seed_delta: 0 });
    }
  });

  it("eta null takes override_settings' eta_ancestral", async () => {
    const viaSetting = await txt2img({ eta: null, override_settings: { eta_ancestral: 0 } });
    const viaField = await txt2img({ eta: 0 });
    expect(await pixels(viaSetting.images[0]!)).toBe(await pixels(viaField.images[0]!));
    const plain = await txt2img({});
    expect(await pixels(plain.images[0]!)).not.toBe(await pixels(viaField.images[0]!));
  });

  it("s_churn with Euler churns and writes Sigma churn; with Euler a (no churn in A1111 either) it is ignored", async () => {
    const churned = await txt2img({ sampler_name: "Euler", s_churn: 0.5, s_tmin: 0.1 });
    const euler = await txt2img({ sampler_name: "Euler" });
    expect(await pixels(churned.images[0]!)).not.toBe(await pixels(euler.images[0]!));
    const info = JSON.parse(churned.info) as { infotexts: string[] };
    expect(info.infotexts[0]).toMatch(/Sigma churn: 0\.5, Sigma tmin: 0\.1/);
    const viaSetting = await txt2img({ sampler_name: "Euler", override_settings: { s_churn: 0.5, s_tmin: 0.1 } });
    expect(await pixels(viaSetting.images[0]!)).toBe(await pixels(churned.images[0]!));
    const plain = await txt2img({});
    const ancestral = await txt2img({ s_churn: 0.5 });
    expect(await pixels(ancestral.images[0]!)).toBe(await pixels(plain.images[0]!));
  });

  it("our API takes eta, s_noise, s_churn and eta_noise_seed_delta, and refuses an ENSD past the last seed", async () => {
    const refused = await postJson<{ error: { message: string } }>(`${started.server.base}/api/v1/jobs`, {
      prompt: "x",
      seed: "18446744073709551615",
      eta_noise_seed_delta: 1,
    });
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.body)).toMatch(/eta noise seed delta 1 with seed 18446744073709551615/);
    const accepted = await postJson<{ id: string }>(`${started.server.base}/api/v1/jobs`, {
      prompt: "x",
      steps: 2,
      width: 64,
      height: 64,
      sampler_name: "Euler a",
      eta: 0.5,
      s_noise: 0.9,
      s_churn: 0.2,
      eta_noise_seed_delta: 31337,
    });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
  });
});
