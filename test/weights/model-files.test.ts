import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { HAVE_REFERENCE, ref } from "../helpers/fixtures.js";
import type { OpenKind } from "./open-in-child.js";

/**
 * Model files that are not regular files: a named pipe (opening one for reading waits for a writer, so before
 * the fix every reader below hung forever), a device, a folder. The readers run in a child process that is killed
 * after a deadline, so a regression fails the test instead of hanging the suite.
 */

const HERE = dirname(fileURLToPath(import.meta.url));
const DEADLINE_MS = 60_000; // far above the few seconds this takes; only a hang reaches it

interface Outcome {
  kind: OpenKind;
  path: string;
  error: string | null;
  message?: string;
}

function openInChild(
  cases: { kind: OpenKind; path: string }[],
): Promise<{ outcomes: Outcome[]; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(HERE, "open-in-child.ts"), JSON.stringify(cases)], {
      stdio: ["ignore", "pipe", "inherit"],
      timeout: DEADLINE_MS,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.on("error", reject);
    child.on("close", (_code, signal) =>
      resolve({
        signal,
        outcomes: stdout
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Outcome),
      }),
    );
  });
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function mkfifo(path: string): string {
  execFileSync("mkfifo", [path]);
  return path;
}

/** A copy of the sd15-tiny folder with a named pipe in place of one of its files. */
function tinyFolderWithFifo(relative: string): string {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-fifo-"));
  dirs.push(dir);
  const model = join(dir, "sd15-tiny");
  cpSync(ref("models/sd15-tiny"), model, { recursive: true });
  rmSync(join(model, relative), { force: true });
  mkfifo(join(model, relative));
  return model;
}

describe.runIf(process.platform !== "win32" && HAVE_REFERENCE)(
  "model files that are not regular files are refused at once, named",
  () => {
    it("a named pipe as a single file, as a diffusers folder's config, index or weights, tokenizer file or generation config; a device", async () => {
      const single = join(mkdtempSync(join(tmpdir(), "diffuse-fifo-")), "model.safetensors");
      dirs.push(dirname(single));
      mkfifo(single);
      const folderFiles = [
        "unet/config.json",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "vae/diffusion_pytorch_model.safetensors",
      ];
      const cases: { kind: OpenKind; path: string; file: string; kindOfFile: string; error: string }[] = [
        {
          kind: "safetensors",
          path: single,
          file: single,
          kindOfFile: "a named pipe (FIFO)",
          error: "CheckpointError",
        },
        { kind: "checkpoint", path: single, file: single, kindOfFile: "a named pipe (FIFO)", error: "CheckpointError" },
        {
          kind: "safetensors",
          path: "/dev/zero",
          file: "/dev/zero",
          kindOfFile: "a character device",
          error: "CheckpointError",
        },
        ...folderFiles.map((f) => {
          const dir = tinyFolderWithFifo(f);
          return {
            kind: "checkpoint" as const,
            path: dir,
            file: join(dir, f),
            kindOfFile: "a named pipe (FIFO)",
            error: "CheckpointError",
          };
        }),
        ...["vocab.json", "merges.txt"].map((f) => {
          const dir = tinyFolderWithFifo(`tokenizer/${f}`);
          return {
            kind: "tokenizer" as const,
            path: join(dir, "tokenizer"),
            file: join(dir, "tokenizer", f),
            kindOfFile: "a named pipe (FIFO)",
            error: "InputError",
          };
        }),
        (() => {
          const dir = tinyFolderWithFifo("generation_config.json");
          return {
            kind: "generation-config" as const,
            path: dir,
            file: join(dir, "generation_config.json"),
            kindOfFile: "a named pipe (FIFO)",
            error: "InputError",
          };
        })(),
      ];
      const { outcomes, signal } = await openInChild(cases.map(({ kind, path }) => ({ kind, path })));
      expect(
        signal,
        `killed after ${DEADLINE_MS} ms: a reader hung (cases done: ${outcomes.length} of ${cases.length})`,
      ).toBeNull();
      expect(outcomes).toHaveLength(cases.length);
      cases.forEach((c, i) => {
        const o = outcomes[i]!;
        expect(o.error, `${c.kind} ${c.file}`).toBe(c.error);
        expect(o.message).toContain(`${c.file} is ${c.kindOfFile}, not a regular file`);
      });
    });
  },
);
