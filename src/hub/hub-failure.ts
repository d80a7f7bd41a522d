import { HubApiError } from "@huggingface/hub";
import { DiffuseError, HubError } from "../errors.js";
import type { HubFetch } from "./hub-fetch.js";
import type { StoreSettings } from "./store-settings.js";

/** What was being fetched when a request failed, for the message. */
export interface FailureContext {
  readonly repo: string;
  readonly revision: string;
  readonly file?: string;
  /** The repository asks users to accept conditions on its page (the Hub's `gated`). */
  readonly gated?: boolean;
}

/**
 * A failure of the Hub client as an error a user can act on: a 401 means a gated or private repository and names
 * HF_TOKEN and the page where access is granted, a 403 a token without that access, a 404 says what is missing
 * (repository, revision or file). Errors already ours pass through.
 */
export function hubFailure(e: unknown, ctx: FailureContext, hub: HubFetch, settings: StoreSettings): Error {
  if (e instanceof DiffuseError || (e as Error)?.name === "AbortError") return e as Error;
  const page = `${settings.endpoint}/${ctx.repo}`;
  const what = ctx.file ? `${ctx.file} of ${ctx.repo}` : ctx.repo;
  if (e instanceof TypeError && /access token/i.test(e.message)) {
    return new HubError(
      `the Hugging Face token (HF_TOKEN or the saved login) is not an access token: they start with hf_; make one at ${settings.endpoint}/settings/tokens`,
    );
  }
  const status = e instanceof HubApiError ? e.statusCode : hub.lastFailure?.status;
  const code = hub.lastFailure?.code;
  if (status === 401) {
    if (ctx.gated || code === "GatedRepo") {
      return new HubError(
        `${ctx.repo} is gated: accept its conditions at ${page} while logged in, then ${settings.token ? "check that HF_TOKEN is a token of that account" : "set HF_TOKEN to a read token of that account"} (${settings.endpoint}/settings/tokens)`,
      );
    }
    return new HubError(
      settings.token
        ? `the Hub refused the token for ${what} (401): check HF_TOKEN (${settings.endpoint}/settings/tokens)`
        : `${ctx.repo} needs a login (401: private or gated): set HF_TOKEN to a read token (${settings.endpoint}/settings/tokens), after accepting any conditions at ${page}`,
    );
  }
  if (status === 403) {
    return new HubError(
      `the token has no access to ${ctx.repo} (403): accept the repository's conditions at ${page} (access may take a while to be granted), ` +
        "or use a token allowed to read gated repositories (fine-grained tokens need that permission)",
    );
  }
  if (status === 404) {
    if (code === "RevisionNotFound")
      return new HubError(
        `${ctx.repo} has no revision "${ctx.revision}" (404): use a branch, tag or commit of the repository`,
      );
    if (code === "EntryNotFound" || (ctx.file && code !== "RepoNotFound"))
      return new HubError(`${ctx.repo}@${ctx.revision} has no file ${ctx.file} (404)`);
    return new HubError(
      `no repository ${ctx.repo} on ${settings.endpoint} (404); check the name${settings.token ? "" : ", or set HF_TOKEN if it is private"}`,
    );
  }
  // WebBlob's streams fail with the message alone (a string), not the error.
  const message = e instanceof Error ? e.message : String(e);
  if (status !== undefined) {
    return new HubError(
      `the Hub answered ${status} for ${what}${status >= 500 ? ": a problem on its side; try again later" : ""} (${message})`,
    );
  }
  return new HubError(`fetching ${what} failed: ${message}`);
}
