import { readFileSync, writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { readSse, startServer, tempDir, type TestServer } from "./harness.js";

async function call<T>(base: string, method: "GET" | "POST", path: string, body?: unknown) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as T };
}

type Generated = { images: string[]; parameters: Record<string, unknown>; info: string };

describe.skipIf(!HAVE_REFERENCE)("the rest of A1111's /sdapi/v1, as its clients call it at start-up", () => {
  let s: TestServer;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer({ cacheDir: cache.path });
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });

  it("lists no hypernetworks and no face restorers, in A1111's list shapes", async () => {
    expect(await call(s.base, "GET", "/sdapi/v1/hypernetworks")).toEqual({ status: 200, json: [] });
    expect(await call(s.base, "GET", "/sdapi/v1/face-restorers")).toEqual({ status: 200, json: [] });
  });

  it("reads prompt styles from styles.csv in the data folder, in A1111's CSV format", async () => {
    writeFileSync(
      join(s.dataDir, "styles.csv"),
      '\uFEFFname,prompt,negative_prompt\r\nwatercolor,"{prompt}, watercolor, soft ""wet"" edges",blurry\r\n' +
        'sharp,"detailed,\nsharp",\r\n',
    );
    const r = await call<unknown[]>(s.base, "GET", "/sdapi/v1/prompt-styles");
    expect(r).toEqual({
      status: 200,
      json: [
        { name: "watercolor", prompt: '{prompt}, watercolor, soft "wet" edges', negative_prompt: "blurry" },
        { name: "sharp", prompt: "detailed,\nsharp", negative_prompt: "" },
      ],
    });
  });

  it("saves prompt styles to styles.csv as A1111 writes it, and applies them to a request's prompts", async () => {
    const styles = [
      { name: "framed", prompt: "a {prompt} in a frame", negative_prompt: "text, watermark" },
      { name: "quoted", prompt: 'say "hi", twice', negative_prompt: "" },
    ];
    const saved = await call(s.base, "POST", "/sdapi/v1/prompt-styles", styles);
    expect(saved.status).toBe(200);
    expect(readFileSync(join(s.dataDir, "styles.csv"), "utf8")).toBe(
      'name,prompt,negative_prompt\r\nframed,a {prompt} in a frame,"text, watermark"\r\nquoted,"say ""hi"", twice",\r\n',
    );
    expect((await call(s.base, "GET", "/sdapi/v1/prompt-styles")).json).toEqual(styles);
    const r = await call<Generated>(s.base, "POST", "/sdapi/v1/txt2img", {
      prompt: "cat",
      negative_prompt: "dog",
      styles: ["framed", "quoted"],
      steps: 2,
    });
    expect(r.status).toBe(200);
    const info = JSON.parse(r.json.info) as { infotexts: string[]; styles: string[] };
    expect(info.infotexts[0]).toMatch(/^a cat in a frame, say "hi", twice\nNegative prompt: dog, text, watermark\n/);
    expect(info.styles).toEqual(["framed", "quoted"]);
    const unknown = await call<{ detail: string }>(s.base, "POST", "/sdapi/v1/txt2img", {
      prompt: "cat",
      styles: ["nope"],
      steps: 2,
    });
    expect(unknown.status).toBe(422);
    expect(unknown.json.detail).toMatch(/styles: no style "nope".*framed/);
    const bad = await call<{ detail: unknown }>(s.base, "POST", "/sdapi/v1/prompt-styles", [{ prompt: "x" }]);
    expect(bad.status).toBe(422);
  });

  it("answers cmd-flags with the server's flags under A1111's names", async () => {
    const r = await call<Record<string, unknown>>(s.base, "GET", "/sdapi/v1/cmd-flags");
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ api: true, nowebui: false, listen: false, api_server_stop: false });
    expect(r.json["data_dir"]).toBe(s.dataDir);
    expect(typeof r.json["lora_dir"]).toBe("string");
    expect(r.json["ckpt"]).toMatch(/sd15-tiny/);
  });

  it("reports memory: the process's resident size against the system's total, and CUDA as unavailable", async () => {
    const r = await call<{ ram: { free: number; used: number; total: number }; cuda: unknown }>(
      s.base,
      "GET",
      "/sdapi/v1/memory",
    );
    expect(r.status).toBe(200);
    expect(r.json.ram.total).toBe(totalmem());
    expect(r.json.ram.used).toBeGreaterThan(10 * 1024 * 1024);
    expect(r.json.ram.used).toBeLessThan(totalmem());
    expect(r.json.ram.free).toBe(r.json.ram.total - r.json.ram.used);
    expect(r.json.cuda).toEqual({ error: "unavailable" });
  });

  it("lists the scripts that apply (the X/Y/Z plot, the ControlNet extension's) with their info", async () => {
    const scripts = await call<{ txt2img: string[]; img2img: string[] }>(s.base, "GET", "/sdapi/v1/scripts");
    expect(scripts).toEqual({
      status: 200,
      json: { txt2img: ["x/y/z plot", "controlnet"], img2img: ["x/y/z plot", "controlnet"] },
    });
    const info = await call<{ name: string; is_alwayson: boolean; is_img2img: boolean; args: unknown[] }[]>(
      s.base,
      "GET",
      "/sdapi/v1/script-info",
    );
    expect(info.status).toBe(200);
    expect(info.json.map((i) => [i.name, i.is_alwayson, i.is_img2img])).toEqual([
      ["controlnet", true, false],
      ["x/y/z plot", false, false],
      ["controlnet", true, true],
      ["x/y/z plot", false, true],
    ]);
    for (const i of info.json) expect(Array.isArray(i.args)).toBe(true);
  });

  it("refreshes the VAE list, answering null as A1111 does", async () => {
    expect(await call(s.base, "POST", "/sdapi/v1/refresh-vae")).toEqual({ status: 200, json: null });
  });

  it("unload-checkpoint releases the served model and reload-checkpoint (or the next job) loads it again", async () => {
    type Models = { available: { name: string; served: boolean; state: string }[] };
    const state = async () =>
      (await call<Models>(s.base, "GET", "/api/v1/models?wait=false")).json.available.find((m) => m.served)?.state;
    await call(s.base, "POST", "/sdapi/v1/txt2img", { prompt: "warm", steps: 1 });
    expect(await state()).toBe("loaded");
    expect(await call(s.base, "POST", "/sdapi/v1/unload-checkpoint")).toEqual({ status: 200, json: {} });
    expect(await state()).toBe("unloaded");
    expect(await call(s.base, "POST", "/sdapi/v1/reload-checkpoint")).toEqual({ status: 200, json: {} });
    expect(await state()).toBe("loaded");
    await call(s.base, "POST", "/sdapi/v1/unload-checkpoint");
    const r = await call<Generated>(s.base, "POST", "/sdapi/v1/txt2img", { prompt: "after unload", steps: 1 });
    expect(r.status).toBe(200);
    expect(r.json.images).toHaveLength(1);
    expect(await state()).toBe("loaded");
  });

  it("refuses server-kill, server-restart and server-stop with 403 saying how to allow them", async () => {
    for (const route of ["server-kill", "server-restart", "server-stop"]) {
      const r = await call<{ detail: string }>(s.base, "POST", `/sdapi/v1/${route}`);
      expect(r.status).toBe(403);
      expect(r.json.detail).toMatch(/--api-server-stop/);
    }
  });

  it("skip ends the current image's sampling early, keeps its image and goes on with the next one", async () => {
    const pending = call<Generated>(s.base, "POST", "/sdapi/v1/txt2img", { prompt: "skip", steps: 150, n_iter: 2 });
    let id: string | undefined;
    for (let i = 0; i < 2000 && !id; i++) {
      const jobs = (await call<{ jobs: { id: string; state: string }[] }>(s.base, "GET", "/api/v1/jobs?limit=1")).json;
      if (jobs.jobs[0]?.state === "running") id = jobs.jobs[0].id;
      else await new Promise((r) => setTimeout(r, 10));
    }
    expect(id).toBeDefined();
    type Step = { step: number; steps: number; batch: number };
    let skipped: Promise<unknown> | undefined;
    const events = await readSse(await fetch(`${s.base}/api/v1/jobs/${id}/events`), (e) => {
      const d = e.data as Step;
      if (e.event === "step" && d.batch === 0 && d.step >= 2 && !skipped)
        skipped = call(s.base, "POST", "/sdapi/v1/skip");
      return e.event === "done" || e.event === "error" || e.event === "cancelled";
    });
    expect(await skipped).toEqual({ status: 200, json: null });
    const steps = events.filter((e) => e.event === "step").map((e) => e.data as Step);
    const last = (batch: number) => Math.max(...steps.filter((x) => x.batch === batch).map((x) => x.step));
    expect(last(0)).toBeLessThan(150);
    // Only the current image is skipped: the next one runs all of its steps.
    expect(last(1)).toBe(150);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.images).toHaveLength(2);
  });

  it("echoes in `parameters` the values the job used (size, cfg, steps, sampler, seed), not A1111's defaults", async () => {
    const r = await call<Generated>(s.base, "POST", "/sdapi/v1/txt2img", {
      prompt: "echo",
      steps: 3,
      sampler_name: "k_euler_a",
      my_field: 1,
    });
    expect(r.status).toBe(200);
    const info = JSON.parse(r.json.info) as Record<string, unknown>;
    expect(info["sampler_name"]).toBe("Euler a");
    expect(r.json.parameters).toMatchObject({
      prompt: "echo",
      width: info["width"],
      height: info["height"],
      cfg_scale: info["cfg_scale"],
      steps: 3,
      sampler_name: "Euler a",
      seed: info["seed"],
      batch_size: 1,
      n_iter: 1,
      my_field: 1,
    });
    expect(r.json.parameters["width"]).toBe(64);
    expect(r.json.parameters["seed"]).not.toBe(-1);
  });

  it("accepts A1111's sampler aliases in any case, as its samplers map does", async () => {
    for (const [alias, label] of [
      ["k_euler", "Euler"],
      ["K_DPMPP_2M", "DPM++ 2M"],
      ["k_dpmpp_2m_ka", "DPM++ 2M Karras"],
      ["k_lms", "LMS"],
      ["k_dpm_2", "DPM2"],
      ["K_DPM_2_A", "DPM2 a"],
      ["k_dpmpp_2s_a", "DPM++ 2S a"],
      ["k_dpmpp_3m_sde", "DPM++ 3M SDE"],
      ["restart", "Restart"],
    ]) {
      const r = await call<Generated>(s.base, "POST", "/sdapi/v1/txt2img", {
        prompt: "alias",
        steps: 2,
        sampler_name: alias,
      });
      expect(r.status, alias).toBe(200);
      expect((JSON.parse(r.json.info) as { sampler_name: string }).sampler_name).toBe(label);
    }
    const samplers = await call<{ name: string; aliases: string[]; options: object }[]>(
      s.base,
      "GET",
      "/sdapi/v1/samplers",
    );
    expect(samplers.json.find((x) => x.name === "Euler a")?.aliases).toEqual(
      expect.arrayContaining(["k_euler_a", "k_euler_ancestral", "euler-a"]),
    );
    // A1111's options name the schedule type "Automatic" means for the samplers that have one.
    const item = (name: string) => samplers.json.find((x) => x.name === name);
    expect(item("DPM2")).toMatchObject({
      aliases: expect.arrayContaining(["k_dpm_2"]),
      options: { scheduler: "karras" },
    });
    expect(item("DPM++ 3M SDE")?.options).toEqual({ scheduler: "exponential" });
    expect(item("Restart")?.options).toEqual({ scheduler: "karras" });
    const unknown = await call<{ detail: string }>(s.base, "POST", "/sdapi/v1/txt2img", {
      prompt: "x",
      sampler_name: "k_nothing",
    });
    expect(unknown.status).toBe(404);
    expect(unknown.json.detail).toMatch(/Sampler not found: "k_nothing"/);
  });
});

describe.skipIf(!HAVE_REFERENCE)("server-stop, server-kill and server-restart with --api-server-stop", () => {
  it("stop and kill ask the server to stop; restart answers 501 (nothing here can start it again)", async () => {
    for (const route of ["server-stop", "server-kill"]) {
      const s = await startServer({ apiServerStop: true });
      try {
        const r = await fetch(`${s.base}/sdapi/v1/${route}`, { method: "POST" });
        expect(r.status).toBe(200);
        await expect(s.app.stopRequested).resolves.toBe(route === "server-kill" ? "kill" : "stop");
        if (route === "server-stop") {
          const restart = await fetch(`${s.base}/sdapi/v1/server-restart`, { method: "POST" });
          expect(restart.status).toBe(501);
          expect(((await restart.json()) as { detail: string }).detail).toMatch(/restart/);
        }
      } finally {
        await s.close();
      }
    }
  });
});
