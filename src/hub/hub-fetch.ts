import { HubError } from "../errors.js";
import type { StoreSettings } from "./store-settings.js";

/**
 * The `fetch` handed to the Hub client. It adds what the client does not do itself:
 *  - the Hub's own headers survive redirects. For an LFS file the Hub answers `resolve/` with a redirect to a CDN
 *    and puts the file's sha256 (X-Linked-Etag), size (X-Linked-Size) and the commit (X-Repo-Commit) on that
 *    redirect, not on the CDN's answer; fetch follows redirects silently and they would be lost. Redirects are
 *    followed here, and those headers carried onto the final response, which is where the client reads the etag.
 *  - an Authorization header is not sent on to another origin (a signed CDN address needs none);
 *  - HF_HUB_OFFLINE: no request at all;
 *  - cancellation (an AbortSignal on every request, which the client's ranged reads do not pass);
 *  - a refused connection becomes an error that says which address and what to do;
 *  - the status and X-Error-Code of the last failed request are kept, for messages the client's errors lack
 *    (RepoNotFound, RevisionNotFound, GatedRepo).
 */
export class HubFetch {
  lastFailure: { status: number; code: string | undefined; url: string } | undefined;

  constructor(
    private readonly settings: StoreSettings,
    private readonly signal?: AbortSignal,
  ) {}

  readonly fetch: typeof fetch = async (input, init) => {
    if (this.settings.offline) {
      throw new HubError(
        `HF_HUB_OFFLINE is set, so diffuse does not contact the Hub; unset it (or pass offline: false) to download`,
      );
    }
    this.lastFailure = undefined;
    let url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    const carried = new Headers();
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await fetch(url, { ...init, headers, redirect: "manual", signal: this.signal ?? init?.signal });
      } catch (e) {
        if ((e as Error).name === "AbortError") throw e;
        throw unreachable(url, e, this.settings);
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        if (hop >= MAX_REDIRECTS)
          throw new HubError(
            `${url.origin}: more than ${MAX_REDIRECTS} redirects for ${url.pathname}; check HF_ENDPOINT`,
          );
        for (const h of HUB_HEADERS) {
          const v = res.headers.get(h);
          if (v !== null && !carried.has(h)) carried.set(h, v);
        }
        await res.body?.cancel();
        const next = new URL(location, url);
        if (next.origin !== url.origin) headers.delete("authorization");
        url = next;
        continue;
      }
      if (!res.ok)
        this.lastFailure = { status: res.status, code: res.headers.get("x-error-code") ?? undefined, url: url.href };
      if ([...carried.keys()].every((h) => res.headers.has(h))) return res;
      const merged = new Headers(res.headers);
      for (const [h, v] of carried) if (!merged.has(h)) merged.set(h, v);
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers: merged });
    }
  };
}

/** The Hub (or the mirror at HF_ENDPOINT) cannot be reached at all: a cached copy may stand in. */
export class HubUnreachableError extends HubError {}

const MAX_REDIRECTS = 10;
const HUB_HEADERS = ["x-linked-etag", "x-linked-size", "x-repo-commit"];

function unreachable(url: URL, e: unknown, settings: StoreSettings): HubUnreachableError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (e as Error).message;
  return new HubUnreachableError(
    `cannot reach ${url.origin} (${why}): check the network connection${settings.endpoint === url.origin ? " or HF_ENDPOINT" : ""}; ` +
      "set HF_HUB_OFFLINE=1 to use only models already downloaded",
  );
}
