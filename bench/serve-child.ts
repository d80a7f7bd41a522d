// `diffuse serve` from the sources, for bench/server.ts to run in a process of its own: node --import tsx serve-child.ts ARGS.
import { main } from "../src/cli/main.js";

await main(["node", "diffuse", "serve", ...process.argv.slice(2)]);
