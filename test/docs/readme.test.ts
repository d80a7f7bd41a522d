/**
 * The README's examples that use what the package ships (the embedded model, its scribble ControlNet, examples/) run as
 * written, in a fresh folder: each shell command of those blocks through the CLI, the TypeScript blocks with tsx
 * (importing "diffuse" from the sources). Blocks that name a user's own checkpoint (--model ...), or npm itself, are
 * outside this test's reach: they need gigabytes of weights or the network.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** tsx's loader by its path: the example's folder has no node_modules to find it by name. */
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const env = { DIFFUSE_CACHE: mkdtempSync(join(tmpdir(), "diffuse-readme-cache-")) };

interface Block {
  lang: string;
  code: string;
}

function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }));
}

/** Shell words of one command line: double and single quotes, backslash-newline continuations, # comments. */
function commands(code: string): string[][] {
  const out: string[][] = [];
  for (const line of code.replace(/\\\n\s*/g, " ").split("\n")) {
    let words: string[] = [];
    let word: string | null = null;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === '"' || c === "'") {
        const end = line.indexOf(c, i + 1);
        word = (word ?? "") + line.slice(i + 1, end);
        i = end;
      } else if (c === " " || c === "\t") {
        if (word !== null) words.push(word);
        word = null;
      } else if (c === "#" && word === null) break;
      else if (c === "&" && line[i + 1] === "&" && word === null) {
        out.push(words);
        words = [];
        i++;
      } else word = (word ?? "") + c;
    }
    if (word !== null) words.push(word);
    if (words.length > 0) out.push(words);
  }
  return out;
}

const all = blocks(README);
/** A block runs here when every command in it is diffuse on what ships, or npm (installing is the suite's own setup). */
const diffuseArgs = (words: string[]) =>
  words[0] === "node" && words[1] === "bin/diffuse.js"
    ? words.slice(2)
    : words[0] === "diffuse"
      ? words.slice(1)
      : null;
const runnable = all.filter(
  (b) =>
    b.lang === "ts" ||
    (b.lang === "sh" &&
      commands(b.code).some((c) => diffuseArgs(c)) &&
      commands(b.code).every(
        (c) => c[0] === "export" || c[0] === "npm" || (diffuseArgs(c) && !c.some((w) => w === "--model")),
      )),
);

describe("the README's examples on what the package ships", () => {
  it("finds the examples a new user starts with: set-up, sketch, scribble and the library", () => {
    expect(runnable.filter((b) => b.lang === "sh")).toHaveLength(3);
    expect(runnable.filter((b) => b.lang === "ts")).toHaveLength(1);
  });

  for (const [n, block] of runnable.entries()) {
    it(`runs block ${n + 1} (${block.lang}): ${block.code
      .split("\n")
      .find((l) => /diffuse|loadPipeline/.test(l))
      ?.trim()}`, async () => {
      const cwd = mkdtempSync(join(tmpdir(), "diffuse-readme-"));
      symlinkSync(join(ROOT, "examples"), join(cwd, "examples"), "dir");
      if (block.lang === "ts") {
        const file = join(cwd, "example.mts"); // an ES module, as the example is (top-level await)
        writeFileSync(
          file,
          block.code.replaceAll('from "diffuse"', `from ${JSON.stringify(join(ROOT, "src/index.ts"))}`),
        );
        const r = spawnSync(process.execPath, ["--import", TSX, file], {
          cwd,
          env: { ...process.env, ...env },
          encoding: "utf8",
        });
        expect(r.stderr).not.toMatch(/error/i);
        expect(r.status).toBe(0);
        const written = [...block.code.matchAll(/writeFile\("([^"]+)"/g)].map((m) => m[1]!);
        expect(written.length).toBeGreaterThan(0);
        for (const f of written) expect(existsSync(join(cwd, f))).toBe(true);
        return;
      }
      for (const words of commands(block.code)) {
        const args = diffuseArgs(words);
        if (!args) continue;
        const r = await runCli(args, { env, cwd });
        expect(r.stderr).not.toMatch(/error/i);
        expect(r.code).toBe(0);
        // Every file the command reports writing is there.
        const reported = r.stdout.trim().split("\n").filter(Boolean);
        expect(reported.length).toBeGreaterThan(0);
        for (const f of reported) expect(existsSync(resolve(cwd, f))).toBe(true);
      }
      expect(readdirSync(cwd).length).toBeGreaterThan(1);
    });
  }
});
