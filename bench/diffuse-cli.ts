// `diffuse` from the sources, for benchmarks to run a command in a process of its own: node --import tsx diffuse-cli.ts COMMAND ARGS.
import { main } from "../src/cli/main.js";

await main(["node", "diffuse", ...process.argv.slice(2)]);
