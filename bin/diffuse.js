#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script).
import("../dist/cli/main.js")
  .then((m) => m.main(process.argv))
  .catch((e) => {
    if (e && e.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes("dist/cli")) {
      console.error(
        "diffuse: the CLI is not built yet; run `npm install` (or `npm run build`) in the project folder first",
      );
      process.exit(1);
    }
    throw e;
  });
