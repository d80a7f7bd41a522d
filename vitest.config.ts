import { defineConfig } from "vitest/config";

/** Files that replace a module with vi.mock: they need a module registry of their own. */
const OWN_MODULES = ["test/server/token-compare.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Every temp folder the tests make goes into one folder for the run, removed at its end (the helper says how).
    globalSetup: ["test/helpers/run-temp-folder.ts"],
    // onnxruntime sessions each use the cores; running files in parallel only thrashes 2 cores.
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: {
          name: "shared",
          include: ["test/**/*.test.ts"],
          exclude: OWN_MODULES,
          // One process for every file: a fresh process and module graph per file cost ~1 s each (240 files), and
          // the code keeps no global state to isolate. Tests that touch the environment restore it themselves.
          isolate: false,
        },
      },
      { extends: true, test: { name: "isolated", include: OWN_MODULES } },
    ],
  },
});
