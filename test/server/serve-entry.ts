/**
 * A server in its own process, for tests that must kill it (kill -9) or keep their clients out of its event
 * loop (load). Usage: node --import tsx serve-entry.ts DATA_DIR CACHE_DIR; prints "listening URL" when ready.
 */
import { buildApp } from "../../src/server/app.js";
import { resolveServerConfig } from "../../src/server/config.js";
import { ref } from "../helpers/fixtures.js";

const [dataDir, cacheDir] = process.argv.slice(2);
if (!dataDir || !cacheDir) throw new Error("usage: serve-entry.ts DATA_DIR CACHE_DIR");
const config = {
  ...resolveServerConfig({ modelPath: ref("models/sd15-tiny"), dataDir, port: 0 }),
  loadOptions: { threads: 1, cacheDir },
};
const app = await buildApp(config);
const url = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`recovered ${JSON.stringify(app.recovery)}\nlistening ${url}\n`);
process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
