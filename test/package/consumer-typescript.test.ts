/**
 * The published declarations compile in a TypeScript project as a user sets one up: `strict`, no `skipLibCheck`, the
 * default library of its target (ES2022), @types/node. Everything our public types pull in from dependencies is
 * checked there too (both entry points, `diffuse` and `diffuse/server`), so a dependency's type that needs a newer library (Float16Array) breaks the user's build.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

describe("the package's types in a consumer project", () => {
  // The package is laid out inside the checkout, so its dependencies resolve from our node_modules as an installed
  // package's resolve from the user's; the consumer project is elsewhere and reaches it through node_modules/diffuse.
  mkdirSync(join(ROOT, ".test-types"), { recursive: true });
  const pkg = mkdtempSync(join(ROOT, ".test-types", "package-"));
  const consumer = mkdtempSync(join(tmpdir(), "diffuse-consumer-"));

  afterAll(() => {
    rmSync(pkg, { recursive: true, force: true });
    rmSync(consumer, { recursive: true, force: true });
  });

  it("compiles with strict and without skipLibCheck against the built declarations", () => {
    execFileSync(process.execPath, [
      TSC,
      "-p",
      join(ROOT, "tsconfig.build.json"),
      "--emitDeclarationOnly",
      "--sourceMap",
      "false",
      "--outDir",
      join(pkg, "dist"),
    ]);
    copyFileSync(join(ROOT, "package.json"), join(pkg, "package.json"));

    mkdirSync(join(consumer, "node_modules"));
    symlinkSync(pkg, join(consumer, "node_modules", "diffuse"), "dir");
    symlinkSync(join(ROOT, "node_modules", "@types"), join(consumer, "node_modules", "@types"), "dir");
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ type: "module", private: true }));
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          types: ["node"],
          noEmit: true,
        },
        include: ["index.ts"],
      }),
    );
    writeFileSync(
      join(consumer, "index.ts"),
      [
        'import { loadPipeline, listSamplers, type GenerateParams, type GenerateResult } from "diffuse";',
        "const params: GenerateParams = { prompt: 'a red circle', steps: 4, seed: 1 };",
        "const pipe = await loadPipeline('model.safetensors');",
        "const result: GenerateResult = await pipe.generate(params);",
        "console.log(result.images.length, listSamplers().length);",
        'import { buildApp, QueueWorker, type ServerConfigInput } from "diffuse/server";',
        "const config: ServerConfigInput = { modelPath: 'model.safetensors' };",
        "console.log(typeof buildApp, typeof QueueWorker, config);",
        "",
      ].join("\n"),
    );
    const r = spawnSync(process.execPath, [TSC, "-p", consumer], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  }, 180_000);
});
