/**
 * The licences that Stable Diffusion models come under, summarised in our own words: what a user is shown before a
 * download. The licence itself (at `url`) is what binds; the summary says what kind of licence it is and, for the
 * OpenRAIL family that the first Stable Diffusion release introduced, the uses it forbids.
 */

export interface LicenseNotice {
  /**
   * What acceptance is recorded under: the Hub's licence id (creativeml-openrail-m, openrail++, mit...); for a
   * licence of the Hub's "other" kind, `other:` and its name; for a repository that names none, `unknown:` and the
   * repository.
   */
  readonly id: string;
  readonly name: string;
  readonly url: string;
  /** What kind of licence it is and what it asks of a user, in a few sentences. */
  readonly summary: string;
  /** Uses the licence forbids (OpenRAIL's use-based restrictions), one line each; empty for permissive licences. */
  readonly restrictions: readonly string[];
}

/**
 * The use-based restrictions shared by the OpenRAIL-M licences of Stable Diffusion (CreativeML Open RAIL-M for 1.x,
 * Open RAIL++-M for 2.x and XL), in short. The licences also require passing these restrictions on to anyone the
 * model, or a model derived from it, is given to.
 */
const OPENRAIL_M_RESTRICTIONS: readonly string[] = [
  "to break a law or regulation, wherever it applies",
  "to exploit or harm minors, or to try to",
  "to make or spread false information meant to harm others",
  "to make or spread personal information that could harm someone",
  "to defame, disparage or harass people",
  "for fully automated decisions that harm someone's legal rights or bind them to obligations",
  "to discriminate against or harm people for their social behaviour or personal characteristics",
  "to exploit the vulnerabilities of a group (age, disability...) and distort their behaviour in harmful ways",
  "to discriminate on legally protected characteristics",
  "to give medical advice or interpret medical results",
  "to produce information for law enforcement, justice, immigration or asylum decisions (predicting crime, for one)",
];

const OPENRAIL_SUMMARY =
  "A responsible-AI licence: you may use, change, share and sell the model and what it makes, for free, but not for the " +
  "uses listed below. Anyone you pass the model (or a model derived from it) to must get the same restrictions. The images " +
  "are yours, and so is the responsibility for how they are used.";

const PERMISSIVE_SUMMARY =
  "A permissive licence: use, change and share freely, keeping the copyright and licence notice with copies.";

/** The licences known by their Hub id. */
const KNOWN: Readonly<Record<string, Omit<LicenseNotice, "id">>> = {
  "creativeml-openrail-m": {
    name: "CreativeML Open RAIL-M",
    url: "https://huggingface.co/spaces/CompVis/stable-diffusion-license",
    summary: OPENRAIL_SUMMARY,
    restrictions: OPENRAIL_M_RESTRICTIONS,
  },
  "openrail++": {
    name: "CreativeML Open RAIL++-M",
    url: "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md",
    summary: OPENRAIL_SUMMARY,
    restrictions: OPENRAIL_M_RESTRICTIONS,
  },
  openrail: {
    name: "Open RAIL",
    url: "https://huggingface.co/blog/open_rail",
    summary:
      "A responsible-AI licence of the same family as Stable Diffusion's: free use and sharing, with use-based restrictions " +
      "that every copy must carry. Read the repository's licence file for its exact list.",
    restrictions: OPENRAIL_M_RESTRICTIONS,
  },
  mit: { name: "MIT", url: "https://opensource.org/license/mit", summary: PERMISSIVE_SUMMARY, restrictions: [] },
  "apache-2.0": {
    name: "Apache 2.0",
    url: "https://www.apache.org/licenses/LICENSE-2.0",
    summary: `${PERMISSIVE_SUMMARY} It also grants a patent licence and asks that changes be marked.`,
    restrictions: [],
  },
  "bsd-3-clause": {
    name: "BSD 3-Clause",
    url: "https://opensource.org/license/bsd-3-clause",
    summary: PERMISSIVE_SUMMARY,
    restrictions: [],
  },
  "cc-by-4.0": {
    name: "Creative Commons Attribution 4.0",
    url: "https://creativecommons.org/licenses/by/4.0/",
    summary: "Use, change and share freely, crediting the authors.",
    restrictions: [],
  },
  "cc-by-nc-4.0": {
    name: "Creative Commons Attribution-NonCommercial 4.0",
    url: "https://creativecommons.org/licenses/by-nc/4.0/",
    summary: "Use, change and share, crediting the authors, but not for commercial purposes.",
    restrictions: ["commercially"],
  },
};

/** Stability AI's community licences (SD Turbo, SDXL Turbo): not open licences, and limited for commercial use. */
const STABILITY_COMMUNITY_SUMMARY =
  "Stability AI's own community licence, not an open licence: free for research and non-commercial use; commercial use " +
  "is limited (it needs a licence or membership from Stability AI past the terms' thresholds). Read the licence file for the " +
  "current terms. Stability AI's acceptable use policy applies as well.";

/** What the Hub's model information says of a repository's licence. */
export interface LicenseFields {
  /** The licence id (`license:` in the model card, or a `license:` tag). */
  license?: string;
  /** For `other`: the licence's name (`license_name`) and where it is (`license_link`). */
  licenseName?: string;
  licenseLink?: string;
}

/**
 * The notice for a licence: a known one by its id, another from what the repository says of it, and for a repository
 * that names none a notice saying so (accepting it is accepting to read the model card first).
 */
export function describeLicense(fields: LicenseFields, repo: string, endpoint: string): LicenseNotice {
  const id = fields.license?.trim().toLowerCase();
  const repoUrl = `${endpoint}/${repo}`;
  const link = fields.licenseLink && absoluteLink(fields.licenseLink, repoUrl);
  if (id && id !== "other" && KNOWN[id]) return { id, ...KNOWN[id]!, url: link ?? KNOWN[id]!.url };
  if (id === "other" || (id === undefined && fields.licenseName)) {
    const name = fields.licenseName?.trim() || `the licence of ${repo}`;
    const stability = /^(sai-nc-community|stabilityai-ai-community|stabilityai-community)$/i.test(name);
    return {
      id: `other:${fields.licenseName?.trim().toLowerCase() || repo}`,
      name,
      url: link ?? repoUrl,
      summary: stability ? STABILITY_COMMUNITY_SUMMARY : "A licence of the repository's own: read it before use.",
      restrictions: stability ? ["commercially, beyond what the licence's terms allow (see the licence file)"] : [],
    };
  }
  if (id) {
    return { id, name: id, url: link ?? repoUrl, summary: `The ${id} licence: read it before use.`, restrictions: [] };
  }
  return {
    id: `unknown:${repo}`,
    name: "no licence named",
    url: repoUrl,
    summary: "The repository names no licence: read its model card for the terms of use before using the model.",
    restrictions: [],
  };
}

/** A licence known by id (the catalogue's entries), with the repository's own link to it where it has one. */
export function knownLicense(id: string, url?: string): LicenseNotice {
  const known = KNOWN[id];
  if (!known) throw new Error(`unknown licence id ${id}`);
  return { id, ...known, url: url ?? known.url };
}

/** license_link may be relative to the repository ("LICENSE.md"), as on the Hub's pages. */
function absoluteLink(link: string, repoUrl: string): string {
  if (/^https?:\/\//i.test(link)) return link;
  return `${repoUrl}/blob/main/${link.replace(/^\.?\//, "")}`;
}

/** The notice as a user reads it at a terminal. */
export function formatLicense(l: LicenseNotice, what: string): string {
  const lines = [`${what} comes under the ${l.name} licence (${l.url}).`, l.summary];
  if (l.restrictions.length) {
    lines.push("It forbids using the model, or what it makes:");
    for (const r of l.restrictions) lines.push(`  - ${r}`);
  }
  return lines.join("\n");
}
