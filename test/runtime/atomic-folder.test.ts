import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installFolder, makeBuildFolder, retireFolder, sweepAbandoned } from "../../src/runtime/atomic-folder.js";
import { withFileLock } from "../../src/runtime/file-lock.js";
import { hostTag } from "../../src/runtime/process-owner.js";

/** A folder holding `content` in a file, valid when that file is there. */
function built(target: string, content: string): string {
  const dir = makeBuildFolder(target);
  writeFileSync(join(dir, "data"), content);
  return dir;
}
const isValid = (dir: string) => existsSync(join(dir, "data"));
const read = (dir: string) => readFileSync(join(dir, "data"), "utf8");

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

describe("atomic folders", () => {
  it("puts a built folder in place, keeps a valid one that is already there untouched, and leaves nothing else behind", () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-atomic-"));
    const target = join(parent, "entry");
    expect(installFolder(built(target, "first"), target, isValid)).toBe("installed");
    const inode = statSync(join(target, "data")).ino;
    expect(installFolder(built(target, "second"), target, isValid)).toBe("kept-existing");
    expect(read(target)).toBe("first");
    expect(statSync(join(target, "data")).ino).toBe(inode);
    expect(readdirSync(parent)).toEqual(["entry"]);
  });

  it("replaces a broken folder (and an empty one) whole, without mixing their files", () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-atomic-"));
    const target = join(parent, "entry");
    mkdirSync(target);
    writeFileSync(join(target, "junk"), "half-written");
    expect(installFolder(built(target, "fresh"), target, isValid)).toBe("installed");
    expect(readdirSync(target)).toEqual(["data"]);
    expect(read(target)).toBe("fresh");
    const empty = join(parent, "empty");
    mkdirSync(empty);
    expect(installFolder(built(empty, "filled"), empty, isValid)).toBe("installed");
    expect(read(empty)).toBe("filled");
    expect(readdirSync(parent).sort()).toEqual(["empty", "entry"]);
  });

  it("does not bring back a parent folder that has been removed (an evicted entry) to build in it", () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-atomic-"));
    expect(() => makeBuildFolder(join(parent, "gone", "optimized"))).toThrow(/ENOENT/);
    expect(readdirSync(parent)).toEqual([]);
  });

  it("retires a folder only while the condition holds under the lock", () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-atomic-"));
    const target = join(parent, "entry");
    installFolder(built(target, "v1"), target, isValid);
    retireFolder(target, (d) => read(d) === "v0");
    expect(read(target)).toBe("v1");
    retireFolder(target, (d) => read(d) === "v1");
    expect(readdirSync(parent)).toEqual([]);
  });

  it("sweeps the build folders of dead processes and day-old ones from other machines, never those of a live process", () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-atomic-"));
    const target = join(parent, "entry");
    const mine = built(target, "in progress");
    const dead = join(parent, `.entry~${hostTag()}~${deadPid()}~abc123.tmp`);
    const deadRetired = join(parent, `.entry~${hostTag()}~${deadPid()}~abc124.old`);
    const elsewhereYoung = join(parent, ".entry~another-machine~42~abc125.tmp");
    const elsewhereOld = join(parent, ".entry~another-machine~43~abc126.tmp");
    const olderVersion = join(parent, ".entry.1234.1700000000000.tmp");
    for (const d of [dead, deadRetired, elsewhereYoung, elsewhereOld, olderVersion]) mkdirSync(d);
    const twoDaysAgo = new Date(Date.now() - 2 * 86400_000);
    utimesSync(elsewhereOld, twoDaysAgo, twoDaysAgo);
    utimesSync(olderVersion, twoDaysAgo, twoDaysAgo);
    sweepAbandoned(parent);
    expect(readdirSync(parent).sort()).toEqual([mine, elsewhereYoung].map((p) => p.slice(parent.length + 1)).sort());
    expect(read(mine)).toBe("in progress");
  });

  it("takes over a lock left by a dead process", () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-lock-"));
    const lock = join(parent, ".entry.lock");
    writeFileSync(lock, `~${hostTag()}~${deadPid()}~abc123`);
    expect(withFileLock(lock, () => "ran")).toBe("ran");
    expect(readdirSync(parent)).toEqual([]);
  });

  it("waits while a live process holds the lock", async () => {
    const parent = mkdtempSync(join(tmpdir(), "diffuse-lock-"));
    const lock = join(parent, ".entry.lock");
    const released = join(parent, "released");
    const holder = spawn(process.execPath, [
      "-e",
      `
      const fs = require("node:fs");
      fs.writeFileSync(${JSON.stringify(lock)}, "~${hostTag()}~" + process.pid + "~abc999", { flag: "wx" });
      process.stdout.write("held");
      setTimeout(() => { fs.writeFileSync(${JSON.stringify(released)}, ""); fs.rmSync(${JSON.stringify(lock)}); }, 300);
    `,
    ]);
    await new Promise((ok) => holder.stdout.once("data", ok));
    expect(withFileLock(lock, () => existsSync(released))).toBe(true);
    await new Promise((ok) => holder.once("close", ok));
  });
});
