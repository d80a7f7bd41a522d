import type { Command } from "commander";
import { InputError, readImageFile } from "../index.js";
import { verifyImage, type VerifyReport } from "../responsible/provenance/index.js";
import { stringifyExact } from "../json-exact.js";
import { MAX_SIDE_FILE_BYTES, readRegularFile } from "../regular-file.js";
import { FoundButBrokenError, NothingFoundError } from "./finding-errors.js";

/** `diffuse verify IMAGE`: the C2PA content credentials of a PNG or JPEG, and whether they still hold. */
export function registerVerify(program: Command): void {
  program
    .command("verify")
    .description(
      "check the C2PA content credentials (provenance manifest) of a PNG or JPEG: exit 0 valid, 2 none, 3 invalid",
    )
    .argument("<image>", "a PNG or JPEG written by diffuse (or any PNG or JPEG with a C2PA manifest)")
    .option("--json", "print the full report as JSON")
    .option("--trust <pem>", "PEM file of root certificates to trust, to judge who signed")
    .action(async (path: string, o: { json?: boolean; trust?: string }) => {
      // Not readFile: a named pipe would wait for a writer forever, a device never end.
      const bytes = await readImageFile(path);
      const trustAnchors =
        o.trust === undefined
          ? undefined
          : readRegularFile(o.trust, InputError, {
              hint: "pass --trust a PEM file of root certificates",
              maxBytes: MAX_SIDE_FILE_BYTES,
            }).toString("utf8");
      const report = await verifyImage(bytes, { name: path, trustAnchors });
      // A manifest's CBOR may hold integers past 2^53 - 1 (a seed up to 2^64 - 1): printed exactly.
      process.stdout.write(o.json ? stringifyExact(report, 2) + "\n" : formatReport(report));
      if (!report.manifestFound) {
        throw new NothingFoundError(
          `${path} has no C2PA manifest: it was not signed (diffuse writes WebP, and anything with --no-provenance, unsigned), or an editor or website stripped its metadata`,
        );
      }
      if (!report.valid) {
        throw new FoundButBrokenError(
          `${path}: the content credentials fail validation: ${report.failures.map((f) => f.message).join("; ")}`,
        );
      }
    });
}

const TRUST_WORDS: Readonly<Record<string, string>> = {
  trusted: "trusted (chains to a given trust anchor)",
  "self-signed":
    "self-signed: no authority vouches for the signer; it shows the image is unchanged since signing, not who made it",
  "unknown-issuer": "issuer unknown here: pass --trust with its root certificate to judge it",
  broken: "broken certificate chain",
};

/** The human-readable report: what the manifest claims first, then whether it holds. */
export function formatReport(r: VerifyReport): string {
  if (!r.manifestFound) return "no C2PA manifest\n";
  const lines: string[] = [`C2PA manifest ${r.manifestLabel ?? "(unlabelled)"}`];
  const gen = r.claimGenerator;
  if (gen) {
    const extras = Object.entries(gen).filter(([k]) => k !== "name" && k !== "version");
    lines.push(`  claim generator: ${[gen.name, gen.version].filter(Boolean).join(" ") || "(unnamed)"}`);
    for (const [k, v] of extras) lines.push(`    ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  }
  lines.push("  actions:");
  if (r.actions.length === 0) lines.push("    (none)");
  for (const a of r.actions) {
    lines.push(`    ${a.action}${a.softwareAgent ? ` by ${a.softwareAgent}` : ""}`);
    if (a.digitalSourceType) lines.push(`      digitalSourceType: ${a.digitalSourceType}`);
    for (const i of a.ingredients) lines.push(`      ingredient: ${i.replace(/^self#jumbf=/, "")}`);
    for (const [k, v] of Object.entries(a.parameters)) lines.push(`      ${k}: ${stringifyExact(v)}`);
  }
  if (r.ingredients.length) {
    lines.push("  ingredients:");
    for (const i of r.ingredients) {
      const what = [i.title ?? "(untitled)", i.format ? `(${i.format})` : "", i.relationship ?? ""]
        .filter(Boolean)
        .join(" ");
      lines.push(`    ${i.label}: ${what}${i.sha256 ? ` sha256:${i.sha256}` : ""}`);
    }
  }
  if (r.signer) {
    lines.push(`  signer: ${r.signer.subject}${r.signer.algorithm ? ` (${r.signer.algorithm})` : ""}`);
    lines.push(
      `    issued by: ${r.signer.issuer}; valid ${r.signer.notBefore.slice(0, 10)} to ${r.signer.notAfter.slice(0, 10)}`,
    );
    lines.push(`    trust: ${TRUST_WORDS[r.signer.trust] ?? r.signer.trust}`);
  }
  lines.push(`  signature: ${r.signatureValid ? "valid" : "NOT valid"}`);
  lines.push(`  hash binding: ${r.hashBinding}`);
  lines.push(`  AI-generated: ${r.aiGenerated ? "yes (trainedAlgorithmicMedia)" : "not declared"}`);
  lines.push(`  validity: ${r.valid ? "valid" : "INVALID"}`);
  for (const f of r.failures) lines.push(`    - ${f.message} [${f.code}]`);
  return lines.join("\n") + "\n";
}
