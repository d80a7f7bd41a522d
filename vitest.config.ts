import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // onnxruntime sessions each use the cores; running files in parallel only thrashes 2 cores.
    fileParallelism: false,
  },
});
