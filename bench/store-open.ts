/**
 * What the checks at server start cost on a large history: a data folder with --jobs jobs and two images each
 * (as PNG files and rows), a share of them img2img with an uploaded init image of --upload-kib KiB, then the time
 * of JobStore.open (which runs the checks) against SQLite's quick_check and integrity_check alone.
 *
 *   npx tsx bench/store-open.ts [--jobs 10000] [--img2img 0.2] [--upload-kib 64] [--runs 5]
 *
 * Times are with the file in the page cache (a server restarted on the same machine); the first, cold, open is
 * printed separately and is bounded by the disk's read speed over the database's size.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { JobStore } from "../src/server/store.js";

const { values: args } = parseArgs({
  options: {
    jobs: { type: "string", default: "10000" },
    img2img: { type: "string", default: "0.2" },
    "upload-kib": { type: "string", default: "64" },
    runs: { type: "string", default: "5" },
  },
});
const jobs = Number(args.jobs);
const img2imgShare = Number(args.img2img);
const uploadBytes = Number(args["upload-kib"]) * 1024;
const runs = Number(args.runs);

const dir = mkdtempSync(join(tmpdir(), "diffuse-bench-store-"));
try {
  JobStore.open(dir).close(); // the schema, as the server creates it
  const upload = Buffer.from(new Uint8Array(uploadBytes).map((_, i) => (i * 2654435761) >>> 24));
  const prompt = "a lighthouse on a cliff at dusk, dramatic clouds, oil painting, highly detailed, warm light";
  const t0 = performance.now();
  mkdirSync(join(dir, "images"), { recursive: true });
  // Rows as the store writes them, in one transaction: the history of months, built in seconds.
  const raw = new Database(join(dir, "diffuse.sqlite"));
  const job = raw.prepare(
    `INSERT INTO jobs (id, model, type, state, params, source, init_image, created_at, started_at, finished_at, steps_done, steps_total)
     VALUES (?, 'sd15', ?, 'done', ?, 'api', ?, ?, ?, ?, 20, 20)`,
  );
  const image = raw.prepare("INSERT INTO images (id, job_id, idx, seed, infotext) VALUES (?, ?, ?, ?, ?)");
  raw.transaction(() => {
    for (let j = 0; j < jobs; j++) {
      const id = randomUUID();
      const img2img = j < jobs * img2imgShare;
      const type = img2img ? "img2img" : "txt2img";
      const params = {
        type,
        prompt,
        negative_prompt: "blurry",
        seed: j,
        steps: 20,
        width: 512,
        height: 512,
        batch_size: 2,
        has_init_image: img2img,
        has_mask: false,
      };
      const now = new Date().toISOString();
      job.run(id, type, JSON.stringify(params), img2img ? upload : null, now, now, now);
      for (const index of [0, 1]) {
        const imageId = randomUUID();
        image.run(
          imageId,
          id,
          index,
          j + index,
          `${prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: ${j + index}, Size: 512x512, Model: sd15`,
        );
        // Empty files: only their names matter to the checks.
        writeFileSync(join(dir, "images", `${imageId}.png`), "");
      }
    }
  })();
  raw.close();
  const mib = statSync(join(dir, "diffuse.sqlite")).size / 1024 / 1024;
  console.log(
    `built ${jobs} jobs, ${jobs * 2} images, ${Math.round(jobs * img2imgShare)} uploads of ${uploadBytes / 1024} KiB: ${mib.toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // CPU time beside wall time: on a shared machine it is the steadier of the two.
  const time = (fn: () => void) => {
    const t = performance.now();
    const c = process.cpuUsage();
    fn();
    const cpu = process.cpuUsage(c);
    return { wall: performance.now() - t, cpu: (cpu.user + cpu.system) / 1000 };
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const rows: [string, () => void][] = [
    ["JobStore.open (with its checks) + close", () => JobStore.open(dir).close()],
    [
      "open + PRAGMA quick_check + close",
      () => {
        const db = new Database(join(dir, "diffuse.sqlite"));
        db.pragma("quick_check");
        db.close();
      },
    ],
    [
      "open + PRAGMA integrity_check + close",
      () => {
        const db = new Database(join(dir, "diffuse.sqlite"));
        db.pragma("integrity_check");
        db.close();
      },
    ],
    ["open + close (no check, the floor)", () => new Database(join(dir, "diffuse.sqlite")).close()],
  ];
  console.log(`| what | wall ms, median of ${runs} | CPU ms, median |\n| --- | --- | --- |`);
  for (const [name, fn] of rows) {
    fn(); // warm the page cache
    const t = Array.from({ length: runs }, () => time(fn));
    console.log(`| ${name} | ${median(t.map((x) => x.wall)).toFixed(1)} | ${median(t.map((x) => x.cpu)).toFixed(1)} |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
