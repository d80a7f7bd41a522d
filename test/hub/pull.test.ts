import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HubError, InputError, LicenseNotAcceptedError } from "../../src/errors.js";
import { listModels } from "../../src/hub/list-models.js";
import { pull, type PullOptions } from "../../src/hub/pull.js";
import { openCheckpoint } from "../../src/models/open-checkpoint.js";
import { FakeHub } from "../helpers/fake-hub.js";
import { HAVE_REFERENCE } from "../helpers/fixtures.js";
import { CARD_REPO, freshStore, GATED_REPO, hubRepos, SD15_REPO, UNET_FP16 } from "../helpers/hub-fixtures.js";

const UNET_KEY = `${SD15_REPO}/${UNET_FP16}`;
const VAE = "vae/diffusion_pytorch_model.safetensors";

describe.skipIf(!HAVE_REFERENCE)("diffuse pull (library) against a local Hub", () => {
  let hub: FakeHub;
  beforeAll(async () => {
    hub = await FakeHub.start(hubRepos());
  });
  afterAll(async () => hub.close());

  const accepted = (endpoint: string): PullOptions => ({ ...freshStore(endpoint), acceptLicense: true });
  const rejection = (p: Promise<unknown>) =>
    p.then(
      () => new Error("expected the pull to fail"),
      (e: unknown) => e as Error,
    );
  const blobsOf = (cacheDir: string, repo: string) => {
    const dir = join(cacheDir, `models--${repo.replace("/", "--")}`, "blobs");
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  it("completes: the needed files only (fp16 variant, no pickles, exports or root single file), in the Hugging Face cache layout", async () => {
    const opts = accepted(hub.url);
    const r = await pull(SD15_REPO, opts);
    const commit = hub.commitOf(SD15_REPO);
    expect(r.commit).toBe(commit);
    expect([...r.files].sort()).toEqual([
      "model_index.json",
      "scheduler/scheduler_config.json",
      "text_encoder/config.json",
      "text_encoder/model.safetensors",
      "tokenizer/merges.txt",
      "tokenizer/special_tokens_map.json",
      "tokenizer/tokenizer_config.json",
      "tokenizer/vocab.json",
      "unet/config.json",
      UNET_FP16,
      "vae/config.json",
      VAE,
    ]);
    const folder = join(opts.cacheDir!, "models--test-org--sd15-tiny");
    expect(r.path).toBe(join(folder, "snapshots", commit));
    expect(readFileSync(join(folder, "refs", "main"), "utf8")).toBe(commit);
    // Snapshot entries are relative links to blobs named by the sha256 the Hub's X-Linked-Etag gave (the fake CDN's
    // own ETag is something else), and hold those bytes.
    const link = join(r.path, UNET_FP16);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link).startsWith("..")).toBe(true);
    const sha = hub.sha256Of(SD15_REPO, UNET_FP16);
    expect(realpathSync(link)).toBe(realpathSync(join(folder, "blobs", sha)));
    expect(createHash("sha256").update(readFileSync(link)).digest("hex")).toBe(sha);
    // A git-stored file's blob is named by its git blob id.
    const config = readFileSync(join(r.path, "unet/config.json"));
    const gitId = createHash("sha1").update(`blob ${config.length}\0`).update(config).digest("hex");
    expect(realpathSync(join(r.path, "unet/config.json"))).toBe(realpathSync(join(folder, "blobs", gitId)));
    expect(blobsOf(opts.cacheDir!, SD15_REPO).filter((b) => b.endsWith(".incomplete"))).toEqual([]);
    // Nothing of what was left out was requested.
    expect(hub.requests.filter((l) => /\.bin|msgpack|onnx|v1-5-pruned|README/.test(l))).toEqual([]);
    // The folder is a model diffuse opens (the fp16 UNet read in place of the absent fp32 one).
    const ckpt = openCheckpoint(r.path);
    expect(ckpt.config.family).toBe("sd1");
    ckpt.close();
    // The licence was recorded with the date, once.
    const acceptances = JSON.parse(readFileSync(join(opts.home!, "accepted-licenses.json"), "utf8"));
    expect(Object.keys(acceptances)).toEqual(["creativeml-openrail-m"]);
    expect(Number.isNaN(Date.parse(acceptances["creativeml-openrail-m"].acceptedAt))).toBe(false);
    expect(r.license?.name).toBe("CreativeML Open RAIL-M");

    hub.resetCounts();
    const again = await pull(SD15_REPO, opts);
    expect(again.downloaded).toEqual([]);
    expect(again.received).toBe(0);
    expect(hub.requests.filter((l) => l.includes("/cdn/") || l.includes("/resolve/"))).toEqual([]);
  });

  it("refuses a file whose bytes do not match the sha256 of the LFS metadata, and leaves it nowhere in the cache", async () => {
    const opts = accepted(hub.url);
    hub.corrupt.add(`${SD15_REPO}/${VAE}`);
    try {
      const e = await rejection(pull(SD15_REPO, opts));
      expect(e).toBeInstanceOf(HubError);
      expect(e.message).toMatch(
        new RegExp(`${VAE}.*sha256 [0-9a-f]{64}.*LFS metadata.*${hub.sha256Of(SD15_REPO, VAE)}.*discarded`),
      );
    } finally {
      hub.corrupt.clear();
    }
    const blobs = blobsOf(opts.cacheDir!, SD15_REPO);
    expect(blobs.some((b) => b.startsWith(hub.sha256Of(SD15_REPO, VAE)))).toBe(false);
    expect(blobs.filter((b) => b.endsWith(".incomplete"))).toEqual([]);
    // No snapshot: a model folder appears only whole.
    expect(existsSync(join(opts.cacheDir!, "models--test-org--sd15-tiny", "snapshots"))).toBe(false);
    // The files that were fine are kept: the next pull fetches only what is missing.
    hub.resetCounts();
    const r = await pull(SD15_REPO, opts);
    expect(r.downloaded).toContain(VAE);
    // The UNet's blob was whole: only the one-byte probe that reads its etag, no transfer.
    const unetSha = hub.sha256Of(SD15_REPO, UNET_FP16);
    expect(hub.requests.filter((l) => l.includes(unetSha) && !l.endsWith("bytes=0-0"))).toEqual([]);
  });

  it("resumes a download cut off half-way with a Range request, receiving less than 60% of the file again", async () => {
    const opts = accepted(hub.url);
    const size = hub.sizeOf(SD15_REPO, UNET_FP16);
    hub.dropAfter.set(UNET_KEY, 0.5);
    try {
      const e = await rejection(pull(SD15_REPO, opts));
      expect(e).toBeInstanceOf(HubError);
      expect(e.message).toMatch(
        new RegExp(`download of ${UNET_FP16}.*stopped after \\d+ of ${size} bytes.*run the same pull again to resume`),
      );
    } finally {
      hub.dropAfter.clear();
    }
    const partial = join(
      opts.cacheDir!,
      "models--test-org--sd15-tiny",
      "blobs",
      `${hub.sha256Of(SD15_REPO, UNET_FP16)}.incomplete`,
    );
    // What reached the disk before the drop: at most what was sent, less whatever was still in flight when the
    // connection was cut (timing-dependent, tens of KB).
    const kept = statSync(partial).size;
    expect(kept).toBeLessThanOrEqual(Math.floor(size * 0.5));
    expect(kept).toBeGreaterThan(0.4 * size);
    hub.resetCounts();
    const progress: number[] = [];
    const r = await pull(SD15_REPO, {
      ...opts,
      onProgress: (p) => p.file === UNET_FP16 && progress.push(p.resumedFrom),
    });
    expect(r.downloaded).toContain(UNET_FP16);
    expect(hub.bytesServed(SD15_REPO, UNET_FP16)).toBeLessThan(0.6 * size);
    expect(hub.requests.some((l) => l.startsWith("GET /cdn/") && l.endsWith(`bytes=${kept}-${size - 1}`))).toBe(true);
    expect(progress[0]).toBe(kept);
    expect(existsSync(partial)).toBe(false);
    expect(
      createHash("sha256")
        .update(readFileSync(join(r.path, UNET_FP16)))
        .digest("hex"),
    ).toBe(hub.sha256Of(SD15_REPO, UNET_FP16));
  });

  it("stops at the licence of a model not accepted before, downloading nothing; accepts once per licence", async () => {
    const store = freshStore(hub.url);
    const e = await rejection(pull(SD15_REPO, store));
    expect(e).toBeInstanceOf(LicenseNotAcceptedError);
    expect(e.message).toMatch(
      /CreativeML Open RAIL-M licence \(https:\/\/.*\).*not been accepted.*diffuse pull test-org\/sd15-tiny.*--accept-license/,
    );
    expect(existsSync(store.cacheDir)).toBe(false);

    const asked: string[] = [];
    const declined = await rejection(
      pull(SD15_REPO, { ...store, confirmLicense: async (l) => (asked.push(l.id), false) }),
    );
    expect(declined).toBeInstanceOf(LicenseNotAcceptedError);
    expect(existsSync(store.cacheDir)).toBe(false);

    await pull(SD15_REPO, { ...store, confirmLicense: async (l) => (asked.push(l.id), true) });
    // Another model under the same licence is not asked about again; one under a licence of its own is.
    await pull(`${SD15_REPO}:v1-5-pruned-emaonly.safetensors`, {
      ...store,
      confirmLicense: async (l) => (asked.push(l.id), true),
    });
    const card = await pull(CARD_REPO, { ...store, confirmLicense: async (l) => (asked.push(l.id), true) });
    expect(asked).toEqual(["creativeml-openrail-m", "creativeml-openrail-m", "other:tiny-licence"]);
    // A repository outside the catalogue: the licence its model card states, with the card's relative link made absolute.
    expect(card.license).toMatchObject({ name: "tiny-licence", url: `${hub.url}/${CARD_REPO}/blob/main/LICENSE.md` });
  });

  it("a gated repository: 401 names the page to accept its conditions on and HF_TOKEN, 403 a token without access; with access it downloads", async () => {
    const opts = accepted(hub.url);
    const e = await rejection(pull(GATED_REPO, opts));
    expect(e).toBeInstanceOf(HubError);
    expect(e.message).toMatch(
      new RegExp(`${GATED_REPO} is gated: accept its conditions at ${hub.url}/${GATED_REPO}.*HF_TOKEN`),
    );
    const denied = await rejection(pull(GATED_REPO, { ...opts, token: "hf_someone_else" }));
    expect(denied.message).toMatch(
      new RegExp(
        `the token has no access to ${GATED_REPO} \\(403\\): accept the repository's conditions at ${hub.url}/${GATED_REPO}`,
      ),
    );
    const r = await pull(GATED_REPO, { ...opts, token: "hf_fake_token" });
    expect(r.files).toEqual(["model.safetensors"]);
  });

  it("404s say what is missing: the repository, the revision or the file", async () => {
    const opts = accepted(hub.url);
    expect((await rejection(pull("nobody/nothing", opts))).message).toMatch(
      /no repository nobody\/nothing on http:\/\/127\.0\.0\.1:\d+ \(404\)/,
    );
    expect((await rejection(pull(`${SD15_REPO}@v9`, opts))).message).toMatch(/has no revision "v9" \(404\)/);
    expect((await rejection(pull(`${SD15_REPO}:unet/nope.safetensors`, opts))).message).toMatch(
      /has no file unet\/nope\.safetensors.*\.safetensors files: /,
    );
  });

  it("offline (HF_HUB_OFFLINE): the cached copy without a request; nothing cached is an error naming what to pull", async () => {
    const opts = accepted(hub.url);
    const online = await pull("clip-l-tokenizer", opts);
    hub.resetCounts();
    const offline = await pull("clip-l-tokenizer", { ...opts, offline: true });
    expect(offline.path).toBe(online.path);
    expect(hub.requests).toEqual([]);
    const e = await rejection(pull("sd-1.5", { ...opts, offline: true }));
    expect(e).toBeInstanceOf(HubError);
    expect(e.message).toMatch(
      /HF_HUB_OFFLINE is set, and sd-1\.5 \(.*\) is not in the Hugging Face cache.*unset HF_HUB_OFFLINE and run `diffuse pull sd-1\.5`/,
    );
  });

  it("a Hub out of reach: the cached copy when there is one, else an error naming the address", async () => {
    const opts = accepted(hub.url);
    await pull("clip-l-tokenizer", opts);
    const status: string[] = [];
    const r = await pull("clip-l-tokenizer", {
      ...opts,
      endpoint: "http://127.0.0.1:1",
      onStatus: (s) => status.push(s),
    });
    expect(existsSync(join(r.path, "vocab.json"))).toBe(true);
    expect(status.join("\n")).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1.*using the copy in the Hugging Face cache/);
    const e = await rejection(pull(SD15_REPO, { ...opts, endpoint: "http://127.0.0.1:1" }));
    expect(e).toBeInstanceOf(HubError);
    expect(e.message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1 .*HF_HUB_OFFLINE=1/);
  });

  it("what was pulled is listed as the store's, under its catalogue name, with its licence", async () => {
    const opts = accepted(hub.url);
    await pull(SD15_REPO, opts);
    await pull("clip-l-tokenizer", opts);
    const listed = await listModels({ ...opts, searchDefaults: false, hashCacheDir: join(opts.home!, "hashes") });
    expect(
      listed
        .map(({ name, kind, family, source, license }) => ({ name, kind, family, source, license: license?.id }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    ).toEqual([
      { name: "clip-l-tokenizer", kind: "tokenizer", family: "sd1", source: "store", license: "mit" },
      { name: SD15_REPO, kind: "checkpoint", family: "sd1", source: "store", license: "creativeml-openrail-m" },
    ]);
  });

  it("an HF_ENDPOINT that is not an http(s) address is refused, naming the variable", async () => {
    const e = await rejection(pull(SD15_REPO, { ...accepted(hub.url), endpoint: "huggingface.co" }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/HF_ENDPOINT "huggingface\.co" is not an http\(s\) address/);
  });

  it("a file larger than the free disk space is refused before any byte is written, naming HF_HUB_CACHE", async () => {
    const opts = accepted(hub.url);
    hub.announcedSize.set(UNET_KEY, 2 ** 53);
    try {
      const e = await rejection(pull(SD15_REPO, opts));
      expect(e).toBeInstanceOf(HubError);
      expect(e.message).toMatch(new RegExp(`not enough disk space for ${UNET_FP16}.*GiB needed.*HF_HUB_CACHE`));
    } finally {
      hub.announcedSize.clear();
    }
    expect(blobsOf(opts.cacheDir!, SD15_REPO).filter((b) => b.endsWith(".incomplete"))).toEqual([]);
  });
});
