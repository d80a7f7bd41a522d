// Runs the CLI from source (tests spawn it with `node --import tsx`), exactly as bin/diffuse.js runs dist/.
import { main } from "../../src/cli/main.js";

await main(process.argv);
