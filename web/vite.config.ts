import { defineConfig } from "vite";

// `vite build web` and `vite web` both take web/ as the root, so paths here are relative to it.
export default defineConfig({
  // Relative asset URLs keep the build working wherever the server mounts it.
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
  },
  server: {
    // During `vite web` development the API comes from a running `diffuse serve`.
    proxy: { "/api": "http://127.0.0.1:7860" },
  },
});
