import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { getHFHubCachePath } from "@huggingface/hub";
import { InputError } from "../errors.js";
import { diffuseHome } from "./diffuse-home.js";

export { diffuseHome };

/**
 * Where the model store lives and how it reaches the Hub. Every field can be given (the library, the tests); what
 * is not given comes from the environment variables that huggingface_hub and diffusers read, so that diffuse and
 * those tools share one cache and one login. Plain data, so it crosses to a worker thread with the load options.
 */
export interface StoreOptions {
  /** The Hugging Face hub cache (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** diffuse's own data: accepted licences, hashes, settings (default: DIFFUSE_HOME, else the platform's data folder). */
  home?: string;
  /** The Hub's address (default: HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** A token for gated and private repositories (default: HF_TOKEN, else the token `huggingface-cli login` saved; "" for none). */
  token?: string;
  /** Use only what is cached, never the network (default: HF_HUB_OFFLINE). */
  offline?: boolean;
}

export interface StoreSettings {
  readonly cacheDir: string;
  readonly home: string;
  readonly endpoint: string;
  readonly token: string | undefined;
  readonly offline: boolean;
}

const DEFAULT_ENDPOINT = "https://huggingface.co";

/** The options with every default filled in from the environment as it is now. */
export function storeSettings(opts: StoreOptions = {}): StoreSettings {
  const env = process.env;
  return {
    // The client's own rule (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME, XDG_CACHE_HOME), so both agree.
    cacheDir: opts.cacheDir ?? getHFHubCachePath(),
    home: opts.home ?? diffuseHome(env),
    endpoint: checkedEndpoint(opts.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT)),
    // An empty token means "none", not "look for one".
    token: opts.token !== undefined ? opts.token || undefined : savedToken(env),
    offline: opts.offline ?? truthy(env.HF_HUB_OFFLINE),
  };
}

/** The Hub's address without a trailing slash; anything but an http(s) address is refused, naming HF_ENDPOINT. */
function checkedEndpoint(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new InputError(
      `HF_ENDPOINT ${JSON.stringify(value)} is not an http(s) address: unset it to use https://huggingface.co, or set it to a mirror's address`,
    );
  }
  return value.replace(/\/+$/, "");
}

/** huggingface_hub's reading of a boolean variable. */
function truthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "ON", "YES", "TRUE"].includes(value.trim().toUpperCase());
}

/** HF_TOKEN, the older HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login` writes (HF_TOKEN_PATH). */
function savedToken(env: NodeJS.ProcessEnv): string | undefined {
  const given = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (given) return given.trim();
  const hfHome = env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "huggingface");
  try {
    return readFileSync(env.HF_TOKEN_PATH || join(hfHome, "token"), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
