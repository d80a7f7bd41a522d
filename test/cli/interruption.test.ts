import { beforeAll, describe, expect, it } from "vitest";
import { constants } from "node:os";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli, type CliResult } from "../helpers/cli.js";

// The embedded tiny model (the default): a run takes about a second, so a signal can be aimed at every phase.
const cache = mkdtempSync(join(tmpdir(), "diffuse-interrupt-cache-"));
const ARGS = ["generate", "a red circle", "--seed", "3", "--batch-size", "2"];
const OUTPUTS = ["out-0.png", "out-1.png"];

type Sig = "SIGINT" | "SIGTERM" | "SIGHUP";
const exitCodeOf = (sig: Sig) => 128 + constants.signals[sig];

interface Run extends CliResult {
  dir: string;
  signalled: boolean;
  /** The signal that ended the child, when it died of one instead of exiting. */
  killedBy: NodeJS.Signals | null;
}

/**
 * Runs generate into a fresh folder; `aim` decides when to signal the child, from its stderr or a timer.
 * Resolves with the exit status and the folder, so the test can look at exactly what was left behind.
 */
function run(
  aim: (child: import("node:child_process").ChildProcess, stderrSoFar: () => string, fire: (sig: Sig) => void) => void,
  env: Record<string, string> = {},
): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-interrupt-"));
  let signalled = false;
  let killedBy: NodeJS.Signals | null = null;
  return runCli([...ARGS, "-o", join(dir, "out.png")], {
    env: { DIFFUSE_CACHE: cache, ...env },
    onSpawn: (child) => {
      let err = "";
      child.stderr!.on("data", (d) => (err += d));
      child.on("exit", (_code, sig) => (killedBy = sig));
      aim(
        child,
        () => err,
        (sig) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          signalled = true;
          child.kill(sig);
        },
      );
    },
  }).then((r) => ({ ...r, dir, signalled, killedBy }));
}

/** Waits for the child to say it paused at `point` (the test hook), then sends `sig` once. */
function atPoint(point: string, sig: Sig, env: Record<string, string> = {}): Promise<Run> {
  let sent = false;
  return run(
    (child, stderr, fire) => {
      child.stderr!.on("data", () => {
        if (!sent && stderr().includes(`paused at ${point}`)) {
          sent = true;
          fire(sig);
        }
      });
    },
    { DIFFUSE_TEST_PAUSE_AT: point, ...env },
  );
}

async function expectComplete(r: Run): Promise<void> {
  expect(r.stderr).not.toMatch(/interrupt/i);
  expect(r.code).toBe(0);
  expect(readdirSync(r.dir).sort()).toEqual(OUTPUTS);
  for (const f of OUTPUTS) {
    const m = await sharp(readFileSync(join(r.dir, f))).metadata();
    expect(m).toMatchObject({ format: "png", width: 64, height: 64 });
  }
}

function expectNothingWritten(r: Run, sig: Sig): void {
  // Not one file, and no temporary file either.
  expect(readdirSync(r.dir), `after ${sig}: exit ${r.code}, stderr ${r.stderr}`).toEqual([]);
  // Signals are sent only after the command's first word on stderr, when its handlers are installed: it must
  // exit by itself with the conventional status rather than die of the signal.
  expect(r.killedBy).toBeNull();
  expect(r.code).toBe(exitCodeOf(sig));
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(new RegExp(`interrupted by ${sig}`));
}

describe("diffuse generate interrupted by a signal writes nothing", () => {
  // One run builds the model's graphs into the cache first: the tests then run two processes side by side, and
  // two builders racing on an empty cache is a fault of its own (issue 12 item 6), not the one tested here.
  beforeAll(async () => {
    await expectComplete(await run(() => {}));
  });

  // Every phase after the handlers are installed: model loaded, images generated (the window of the old race:
  // the steps are over, so aborting the pipeline changed nothing), images encoded, files staged under temporary
  // names. SIGINT, SIGTERM and SIGHUP are each sent at some phase; the runs of one phase go side by side.
  const phases: [string, Sig[]][] = [
    ["loaded", ["SIGHUP"]],
    ["generated", ["SIGINT", "SIGTERM"]],
    ["encoded", ["SIGTERM"]],
    ["staged", ["SIGINT", "SIGHUP"]],
  ];
  for (const [point, signals] of phases) {
    it(`${signals.join(" or ")} once the images are ${point === "loaded" ? "not yet made (model loaded)" : point}: exit 128+n, no file, no temporary file`, async () => {
      const runs = await Promise.all(signals.map((sig) => atPoint(point, sig)));
      runs.forEach((r, j) => {
        expect(r.signalled, `paused at ${point}? exit ${r.code}, stderr ${r.stderr}`).toBe(true);
        expectNothingWritten(r, signals[j]!);
      });
    });
  }

  it("a signal once the files are committed changes nothing: exit 0, every file complete, no word of interruption", async () => {
    const runs = await Promise.all((["SIGINT", "SIGTERM"] as Sig[]).map((sig) => atPoint("committed", sig)));
    for (const r of runs) {
      expect(r.signalled).toBe(true);
      expect(r.killedBy).toBeNull();
      await expectComplete(r);
      expect(r.stdout.trim().split("\n")).toEqual(OUTPUTS.map((f) => join(r.dir, f)));
    }
  });

  it("a signal in the moments after the files are reported, while the process exits, still ends it with 0", async () => {
    // Node's own teardown removed the handlers some 20 to 50 ms after the paths were printed, while onnxruntime
    // unloaded, and a signal then killed a run whose files were all written (3 of 10 runs with signals 0 to
    // 200 ms after the paths). One run at a time, so the moments are those measured.
    for (const [k, delay] of [15, 25, 35, 45, 55].entries()) {
      const r = await run((child, _stderr, fire) => {
        child.stdout!.once("data", () => setTimeout(() => fire(k % 2 === 0 ? "SIGINT" : "SIGTERM"), delay));
      });
      expect(r.killedBy, `signal ${delay} ms after the paths`).toBeNull();
      await expectComplete(r);
    }
  });

  it("a second signal quits at once, even while the command is stuck, and removes the staged temporary files", async () => {
    let count = 0;
    const r = await run(
      (child, stderr, fire) => {
        child.stderr!.on("data", () => {
          if (count === 0 && stderr().includes("paused at staged")) {
            count = 1;
            fire("SIGINT");
          } else if (count === 1 && /interrupted by SIGINT/.test(stderr())) {
            count = 2;
            fire("SIGINT");
          }
        });
      },
      { DIFFUSE_TEST_PAUSE_AT: "staged:stall" },
    );
    expect(count).toBe(2);
    expect(r.killedBy).toBeNull();
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/again/);
    expect(readdirSync(r.dir)).toEqual([]);
  });

  it("signals spread over a whole run, the last moments included: every outcome is all files (exit 0) or none (128+n)", async () => {
    // Runs without a signal, two side by side as the signalled ones will run, give the span from the command's
    // first word to its exit; the signals are then aimed from a tenth of it to a little past its end,
    // alternating SIGINT and SIGTERM.
    const spans: number[] = [];
    const baselines = await Promise.all(
      [0, 1].map(() => {
        let first = 0;
        return run((child) => {
          child.stderr!.once("data", () => (first = performance.now()));
          child.on("exit", () => spans.push(performance.now() - first));
        });
      }),
    );
    for (const b of baselines) await expectComplete(b);
    const span = (spans[0]! + spans[1]!) / 2;
    const delays = Array.from({ length: 6 }, (_, k) => span * (0.1 + (1.2 * k) / 5));
    const outcomes = { completed: 0, interrupted: 0 };
    for (let i = 0; i < delays.length; i += 2) {
      const batch = delays.slice(i, i + 2).map((delay, j) => {
        const sig: Sig = (i + j) % 2 === 0 ? "SIGINT" : "SIGTERM";
        return run((child, _stderr, fire) => {
          child.stderr!.once("data", () => {
            const timer = setTimeout(() => fire(sig), delay);
            child.on("exit", () => clearTimeout(timer));
          });
        }).then((r) => ({ r, sig }));
      });
      for (const { r, sig } of await Promise.all(batch)) {
        if (r.code === 0) {
          await expectComplete(r);
          outcomes.completed++;
        } else {
          expectNothingWritten(r, sig);
          outcomes.interrupted++;
        }
      }
    }
    // The earliest signals land well inside the run: at least those interrupt it.
    expect(outcomes.interrupted).toBeGreaterThan(0);
  });
});
