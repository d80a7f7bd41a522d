import { X509Certificate as NodeCertificate } from "node:crypto";
import type { Asset } from "@trustnxt/c2pa-ts/asset";
import { SuperBox } from "@trustnxt/c2pa-ts/jumbf";
import {
  IngredientAssertion,
  ManifestStore,
  ValidationError,
  type Action,
  type Manifest,
  type ValidationStatusEntry,
} from "@trustnxt/c2pa-ts/manifest";
import { evaluateChain, splitPemCertificates, type ChainTrust } from "./certificate-chain.js";
import { signingCertificateProblems } from "./certificate-profile.js";
import { readGeneratorInfo, type GeneratorInfo } from "./generator-claim.js";
import { openSignableAsset } from "./signable-asset.js";
import {
  COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
  SELF_SIGNED_STATEMENT,
  SIGNING_KEY_FIELD,
  TRAINED_ALGORITHMIC_MEDIA,
} from "./vocabulary.js";

export interface VerifyOptions {
  /** PEM text of root certificates to trust; without it no signer can be `trusted`. */
  readonly trustAnchors?: string;
  /** How to call the image in error messages. */
  readonly name?: string;
}

/** One reason the manifest fails validation, in words and as the C2PA status code. */
export interface VerifyFailure {
  readonly code: string;
  readonly message: string;
  readonly url?: string;
}

export interface ReportedAction {
  readonly action: string;
  readonly digitalSourceType?: string;
  readonly softwareAgent?: string;
  /** JUMBF URIs of the ingredient assertions the action used. */
  readonly ingredients: string[];
  /** The remaining parameters (diffuse puts the generation settings under org.diffuse.generation). */
  readonly parameters: Record<string, unknown>;
}

export interface ReportedIngredient {
  readonly label: string;
  readonly relationship?: string;
  readonly title?: string;
  readonly format?: string;
  readonly description?: string;
  /** Hex SHA-256 of the ingredient's bytes, when the manifest names it by that hash. */
  readonly sha256?: string;
  readonly dataUri?: string;
}

export interface ReportedSigner {
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** COSE algorithm name (ES256, ...). */
  readonly algorithm?: string;
  /** Subjects from the signing certificate up. */
  readonly chain: string[];
  /** Who vouches for the signer; see ChainTrust. Independent of `valid`. */
  readonly trust: ChainTrust;
  readonly selfSigned: boolean;
  /** The claim generator said its key is a self-signed local one (diffuse's default). */
  readonly declaredSelfSigned: boolean;
}

export interface VerifyReport {
  /** False when the image carries no manifest (no caBX chunk, no APP11 JUMBF): there is nothing to verify. */
  readonly manifestFound: boolean;
  /**
   * Integrity: the signature matches the claim, every assertion matches its hash in the claim, the hard
   * binding matches the image bytes, and the signing certificate fits the C2PA profile. Who signed (trust)
   * is reported in `signer.trust` and does not make a manifest invalid: diffuse's default key is self-signed.
   */
  readonly valid: boolean;
  readonly failures: VerifyFailure[];
  /** Label (URN) of the active manifest. */
  readonly manifestLabel?: string;
  readonly claimGenerator?: GeneratorInfo;
  readonly instanceID?: string;
  readonly assertions: string[];
  readonly actions: ReportedAction[];
  readonly ingredients: ReportedIngredient[];
  readonly signer?: ReportedSigner;
  readonly signatureValid: boolean;
  /** The hard binding (c2pa.hash.data) against the file's bytes, checked even when other checks failed. */
  readonly hashBinding: "match" | "mismatch" | "missing" | "unchecked";
  /** An action declares the content as made by a trained model (trainedAlgorithmicMedia or a composite with it). */
  readonly aiGenerated: boolean;
  /** Every status the validator recorded, successes included. */
  readonly statuses: ValidationStatusEntry[];
}

/**
 * Reads and validates the C2PA manifest of a PNG or JPEG. A WebP (which diffuse writes without credentials)
 * reports no manifest. Throws InputError only when the file is not a readable image of those formats.
 */
export async function verifyImage(image: Uint8Array, options: VerifyOptions = {}): Promise<VerifyReport> {
  const opened = openSignableAsset(image, options.name ?? "the image");
  if (!opened) return { ...EMPTY, manifestFound: false };
  const { asset } = opened;
  const jumbf = asset.getManifestJUMBF();
  if (!jumbf) return { ...EMPTY, manifestFound: false };

  let store: ManifestStore;
  try {
    store = ManifestStore.read(SuperBox.fromBuffer(new Uint8Array(jumbf)));
  } catch (e) {
    return { ...EMPTY, manifestFound: true, valid: false, failures: [failureFromError(e)] };
  }
  const manifest = store.getActiveManifest();
  if (!manifest?.claim) {
    return {
      ...EMPTY,
      manifestFound: true,
      valid: false,
      failures: [{ code: "claim.missing", message: explain("claim.missing") }],
    };
  }

  let statuses: ValidationStatusEntry[];
  try {
    statuses = (await store.validate(asset)).statusEntries;
  } catch (e) {
    const f = failureFromError(e);
    statuses = [{ code: f.code as ValidationStatusEntry["code"], explanation: f.message, success: false }];
  }
  const failures: VerifyFailure[] = statuses
    .filter((s) => s.success === false)
    .map((s) => failureFromStatus(s, manifest));

  const signer = describeSigner(manifest, options.trustAnchors);
  if (signer?.trust === "broken" && !failures.some((f) => f.code === "signingCredential.invalid")) {
    failures.push({ code: "signingCredential.invalid", message: `the certificate chain is broken: ${signer.problem}` });
  }
  const hashBinding = await checkHardBinding(manifest, asset, statuses);
  if (hashBinding === "mismatch" && !failures.some((f) => f.code === "assertion.dataHash.mismatch")) {
    failures.push({ code: "assertion.dataHash.mismatch", message: explain("assertion.dataHash.mismatch") });
  }

  const actions = (manifest.assertions?.getActionAssertions() ?? []).flatMap((a) => a.actions.map(reportAction));
  return {
    manifestFound: true,
    valid: failures.length === 0,
    failures,
    manifestLabel: manifest.label,
    claimGenerator: readGeneratorInfo(manifest.claim),
    instanceID: manifest.claim.instanceID,
    assertions: (manifest.assertions?.assertions ?? []).map((a) => a.fullLabel ?? a.label ?? "(unlabelled)"),
    actions,
    ingredients: (manifest.assertions?.assertions ?? [])
      .filter((a) => a instanceof IngredientAssertion)
      .map(reportIngredient),
    signer: signer?.report,
    signatureValid: statuses.some((s) => s.code === "claimSignature.validated"),
    hashBinding,
    aiGenerated: actions.some(
      (a) =>
        a.digitalSourceType === TRAINED_ALGORITHMIC_MEDIA ||
        a.digitalSourceType === COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    ),
    statuses,
  };
}

const EMPTY: VerifyReport = {
  manifestFound: false,
  valid: false,
  failures: [],
  assertions: [],
  actions: [],
  ingredients: [],
  signatureValid: false,
  hashBinding: "unchecked",
  aiGenerated: false,
  statuses: [],
};

/** What each failure code means for someone holding the image. */
const EXPLANATIONS: Readonly<Record<string, string>> = {
  "assertion.dataHash.mismatch": "hash mismatch: the image was modified after signing",
  "claimSignature.mismatch":
    "signature mismatch: the claim was altered after signing, or signed with a key other than the certificate's",
  "claimSignature.missing": "the manifest carries no signature",
  "assertion.hashedURI.mismatch": "an assertion was altered after signing: it no longer matches its hash in the claim",
  "assertion.missing": "an assertion the claim lists is missing from the manifest",
  "claim.missing": "the manifest has no claim",
  "claim.multiple": "the manifest has more than one claim",
  "claim.hardBindings.missing":
    "the manifest is not bound to the image bytes (no hash assertion), so it could have been copied from any file",
  "assertion.multipleHardBindings": "the manifest has more than one hard binding",
  "signingCredential.invalid": "the signing certificate is not valid for C2PA",
  "signingCredential.expired": "the signing certificate was outside its validity period",
  "claim.cbor.invalid": "the claim is malformed",
  "assertion.cbor.invalid": "an assertion is malformed",
  "assertion.dataHash.malformed": "the hash assertion is malformed",
  "algorithm.unsupported": "the manifest uses an unsupported algorithm",
};

function explain(code: string): string {
  return EXPLANATIONS[code] ?? code;
}

function failureFromStatus(s: ValidationStatusEntry, manifest: Manifest): VerifyFailure {
  let message = explain(s.code);
  if (s.code === "assertion.hashedURI.mismatch" && s.url) message += ` (${s.url.replace(/^self#jumbf=/, "")})`;
  if (s.code === "signingCredential.invalid") {
    const cert = manifest.signature?.signatureData.certificate;
    const problems = cert
      ? signingCertificateProblems(cert, manifest.signature?.signatureData.timestamp ?? new Date())
      : [];
    if (problems.length) message += `: ${problems.join("; ")}`;
  }
  if (!(s.code in EXPLANATIONS) && s.explanation) message += `: ${s.explanation}`;
  return s.url ? { code: s.code, message, url: s.url } : { code: s.code, message };
}

function failureFromError(e: unknown): VerifyFailure {
  if (e instanceof ValidationError) {
    return { code: e.code, message: `${explain(e.code)}${e.explanation ? `: ${e.explanation}` : ""}` };
  }
  return { code: "general.error", message: `the manifest could not be read: ${(e as Error)?.message ?? String(e)}` };
}

/**
 * The library checks the hard binding only when everything before it passed; a reader still wants to know
 * whether the pixels changed when, say, the certificate is the problem, so it is checked here directly.
 */
async function checkHardBinding(
  manifest: Manifest,
  asset: Asset,
  statuses: ValidationStatusEntry[],
): Promise<VerifyReport["hashBinding"]> {
  if (statuses.some((s) => s.code === "assertion.dataHash.mismatch")) return "mismatch";
  if (statuses.some((s) => s.code === "assertion.dataHash.match")) return "match";
  const bindings = manifest.assertions?.getHardBindings() ?? [];
  if (bindings.length === 0) return "missing";
  try {
    const results = await Promise.all(bindings.map((b) => b.validateAgainstAsset(asset)));
    return results.every((r) => r.isValid) ? "match" : "mismatch";
  } catch {
    return "unchecked";
  }
}

const COSE_ALGORITHMS: Readonly<Record<number, string>> = {
  [-7]: "ES256",
  [-35]: "ES384",
  [-36]: "ES512",
  [-8]: "Ed25519",
  [-37]: "PS256",
  [-38]: "PS384",
  [-39]: "PS512",
};

function describeSigner(
  manifest: Manifest,
  trustAnchors: string | undefined,
): { report: ReportedSigner; trust: ChainTrust; problem?: string } | undefined {
  const sig = manifest.signature?.signatureData;
  if (!sig?.certificate) return undefined;
  const anchors = splitPemCertificates(trustAnchors ?? "").map((p) => new NodeCertificate(p));
  const chain = evaluateChain(
    [sig.certificate, ...sig.chainCertificates].map((c) => new Uint8Array(c.rawData)),
    anchors,
  );
  const generator = manifest.claim ? readGeneratorInfo(manifest.claim) : {};
  const report: ReportedSigner = {
    subject: sig.certificate.subject,
    issuer: sig.certificate.issuer,
    notBefore: sig.certificate.notBefore.toISOString(),
    notAfter: sig.certificate.notAfter.toISOString(),
    algorithm: sig.algorithm ? COSE_ALGORITHMS[sig.algorithm.coseIdentifier] : undefined,
    chain: chain.subjects,
    trust: chain.trust,
    selfSigned: chain.trust === "self-signed",
    declaredSelfSigned: generator[SIGNING_KEY_FIELD] === SELF_SIGNED_STATEMENT,
  };
  return { report, trust: chain.trust, problem: chain.problem };
}

function reportAction(a: Action): ReportedAction {
  const { ingredients, ...parameters } = a.parameters ?? {};
  const agent = a.softwareAgent ? [a.softwareAgent.name, a.softwareAgent.version].filter(Boolean).join(" ") : undefined;
  return {
    action: a.action,
    ...(a.digitalSourceType ? { digitalSourceType: a.digitalSourceType } : {}),
    ...(agent ? { softwareAgent: agent } : {}),
    ingredients: (ingredients ?? []).map((i) => i.uri),
    parameters,
  };
}

function reportIngredient(a: IngredientAssertion): ReportedIngredient {
  const sha256 = a.data && a.data.algorithm === "SHA-256" ? Buffer.from(a.data.hash).toString("hex") : undefined;
  const out: Record<string, string> = { label: a.fullLabel ?? a.label };
  const fields = {
    relationship: a.relationship,
    title: a.title,
    format: a.format,
    description: a.description,
    sha256,
    dataUri: a.data?.uri,
  };
  for (const [k, v] of Object.entries(fields)) if (v) out[k] = v;
  return out as unknown as ReportedIngredient;
}
