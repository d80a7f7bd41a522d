/**
 * What reading a .ckpt costs against the same weights as .safetensors (issue 18): open the checkpoint (the header,
 * or the zip directory and data.pkl read as data by the restricted pickle reader), then read every tensor of every
 * network as fp32 as the network builders do, one at a time, each into a fresh array that is then dropped. Each
 * read runs in a process of its own, so its peak RSS is its own; the two files alternate, round after round, so
 * that load on a shared machine falls on both alike.
 *
 *   npx tsx bench/ckpt-load.ts --safetensors SD1.safetensors --ckpt SD1.ckpt [--rounds 3] [--config DIR]
 *
 * The .ckpt of the same weights is made by scripts/reference/safetensors_to_ckpt.py (torch.save, SD's training
 * layout). Both files are read once first so that every measured read finds them in the page cache.
 */
import { execFileSync } from "node:child_process";
import { closeSync, openSync, readSync } from "node:fs";
import { parseArgs } from "node:util";
import { openCheckpoint } from "../src/models/open-checkpoint.js";

const { values: args } = parseArgs({
  options: {
    safetensors: { type: "string" },
    ckpt: { type: "string" },
    config: { type: "string" },
    rounds: { type: "string", default: "3" },
    child: { type: "string" },
  },
});

if (args.child) {
  const t0 = performance.now();
  const ckpt = openCheckpoint(args.child, args.config ? { configDir: args.config } : {});
  const opened = performance.now();
  let values = 0;
  let sum = 0; // a checksum: both files must give the same values
  for (const w of [ckpt.unet, ckpt.vae, ckpt.textEncoder, ckpt.textEncoder2])
    for (const k of w?.keys() ?? []) {
      const v = w!.float32(k);
      values += v.length;
      for (let i = 0; i < v.length; i += 97) sum += v[i]!;
    }
  const read = performance.now();
  ckpt.close();
  process.stdout.write(
    JSON.stringify({
      openMs: opened - t0,
      readMs: read - opened,
      values,
      sum,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    }),
  );
} else {
  if (!args.safetensors || !args.ckpt) throw new Error("give --safetensors and --ckpt (the same weights)");
  const files = { safetensors: args.safetensors, ckpt: args.ckpt };
  for (const f of Object.values(files)) warm(f);
  const rows: Record<string, { openMs: number; readMs: number; values: number; sum: number; peakRssMb: number }[]> = {};
  for (let r = 0; r < Number(args.rounds); r++)
    for (const [kind, path] of Object.entries(files)) {
      const out = execFileSync(
        process.execPath,
        [...process.execArgv, process.argv[1]!, "--child", path, ...(args.config ? ["--config", args.config] : [])],
        { encoding: "utf8", maxBuffer: 1 << 20 },
      );
      (rows[kind] ??= []).push(JSON.parse(out));
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    "file         open ms   read-all ms   peak RSS MB   values       checksum  (median of %s rounds)",
    args.rounds,
  );
  for (const [kind, rs] of Object.entries(rows))
    console.log(
      `${kind.padEnd(12)} ${median(rs.map((x) => x.openMs))
        .toFixed(0)
        .padStart(7)}   ${median(rs.map((x) => x.readMs))
        .toFixed(0)
        .padStart(11)}   ${median(rs.map((x) => x.peakRssMb))
        .toFixed(0)
        .padStart(11)}   ${rs[0]!.values}   ${rs[0]!.sum.toFixed(3)}`,
    );
  console.log("every round:", JSON.stringify(rows));
}

/** Reads a file once, so that the measured reads find it in the page cache. */
function warm(path: string): void {
  const fd = openSync(path, "r");
  const buf = Buffer.alloc(16 << 20);
  for (let at = 0; ; at += buf.length) if (readSync(fd, buf, 0, buf.length, at) === 0) break;
  closeSync(fd);
}
