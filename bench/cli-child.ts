// `diffuse ARGS` from the sources, for bench/server.ts to run a server or a worker in a process of its own:
// node --import tsx cli-child.ts serve|worker ARGS.
import { main } from "../src/cli/main.js";

await main(["node", "diffuse", ...process.argv.slice(2)]);
