import { createInterface } from "node:readline/promises";
import { formatLicense, type LicenseNotice } from "../index.js";

/**
 * At a terminal: shows a licence and asks whether the user accepts it. Elsewhere (a pipe, a service) there is no one
 * to ask: undefined, and a licence not accepted before stops the download with a message naming --accept-license.
 */
export function terminalLicensePrompt(): ((license: LicenseNotice, what: string) => Promise<boolean>) | undefined {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return async (license, what) => {
    process.stderr.write(`\n${formatLicense(license, what)}\n\n`);
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question(`Accept the ${license.name} licence? [y/N] `);
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}
