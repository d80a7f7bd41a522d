import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import type { StoreOptions } from "../../src/hub/store-settings.js";
import { folderFiles, type FakeRepo } from "./fake-hub.js";
import { ref } from "./fixtures.js";

/** The tiny SD1 diffusers folder as a Hub repository, with what real repositories carry beside it. */
export const SD15_REPO = "test-org/sd15-tiny";
export const GATED_REPO = "test-org/gated-tiny";
export const CARD_REPO = "test-org/card-only";
export const UNET_FP16 = "unet/diffusion_pytorch_model.fp16.safetensors";

export function hubRepos(): FakeRepo[] {
  const sd15 = folderFiles(ref("models/sd15-tiny"));
  return [
    {
      id: SD15_REPO,
      cardData: { license: "creativeml-openrail-m" },
      files: {
        ...sd15,
        // What diffuse must not fetch: an fp32 twin of a file with an fp16 variant is replaced by the variant, and
        // pickles, Flax, ONNX exports and the single-file checkpoint at the root are duplicates.
        [UNET_FP16]: sd15["unet/diffusion_pytorch_model.safetensors"]!,
        "unet/diffusion_pytorch_model.bin": Buffer.from("a pickle diffuse never reads"),
        "text_encoder/flax_model.msgpack": Buffer.from("flax weights"),
        "onnx/unet/model.onnx": Buffer.from("an onnx export"),
        "v1-5-pruned-emaonly.safetensors": ref("models/sd15-tiny.ldm.safetensors"),
        "README.md": Buffer.from("---\nlicense: creativeml-openrail-m\n---\n# tiny\n"),
        // A folder model_index.json marks absent ([null, null]): not a component, not fetched.
        ...folderFiles(ref("models/safety-tiny/safety_checker"), "safety_checker"),
      },
    },
    // The repositories the catalogue's tokenizers come from, serving the fixtures' tiny vocabularies.
    { id: "openai/clip-vit-large-patch14", files: folderFiles(ref("models/sd15-tiny/tokenizer")) },
    {
      id: "stabilityai/stable-diffusion-2-1",
      cardData: { license: "openrail++" },
      files: folderFiles(ref("models/sd2v-tiny/tokenizer"), "tokenizer"),
    },
    {
      id: "stabilityai/stable-diffusion-xl-base-1.0",
      cardData: { license: "openrail++" },
      files: {
        ...folderFiles(ref("models/sdxl-tiny/tokenizer"), "tokenizer"),
        ...folderFiles(ref("models/sdxl-tiny/tokenizer_2"), "tokenizer_2"),
      },
    },
    {
      id: GATED_REPO,
      gated: "manual",
      cardData: { license: "openrail++" },
      files: { "model.safetensors": ref("models/sd15-tiny.ldm.safetensors") },
    },
    {
      id: CARD_REPO,
      files: {
        "model.safetensors": ref("models/sd15-tiny.ldm.safetensors"),
        "README.md": Buffer.from(
          "---\ntags:\n- art\nlicense: other\nlicense_name: tiny-licence\nlicense_link: LICENSE.md\n---\n# a card\n",
        ),
      },
    },
  ];
}

/** A fresh, empty store (Hugging Face cache and DIFFUSE_HOME) talking to `endpoint`, with no token. */
export function freshStore(
  endpoint: string,
): Required<Pick<StoreOptions, "cacheDir" | "home" | "endpoint" | "token">> & { offline: false } {
  const dir = mkdtempSync(join(tmpdir(), "diffuse-store-"));
  return { cacheDir: join(dir, "hf-cache"), home: join(dir, "diffuse-home"), endpoint, token: "", offline: false };
}

/** The same store as environment variables, for a spawned CLI. */
export function storeEnv(store: ReturnType<typeof freshStore>): Record<string, string> {
  // HF_TOKEN_PATH to nowhere: no login saved on this machine is used.
  return {
    HF_HUB_CACHE: store.cacheDir,
    DIFFUSE_HOME: store.home,
    HF_ENDPOINT: store.endpoint,
    HF_TOKEN: "",
    HF_TOKEN_PATH: join(store.home, "no-token"),
    HF_HUB_OFFLINE: "",
  };
}

/** A safetensors file of zeros with these tensor shapes (F16) and metadata: enough for what reads headers. */
export function writeZeroSafetensors(
  path: string,
  shapes: Record<string, number[]>,
  metadata?: Record<string, string>,
): string {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const bytes = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F16", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, Buffer.concat([prefix, json, Buffer.alloc(offset)]));
  return path;
}

/**
 * A diffusers folder laid out by hand as the Hugging Face cache holds it: blobs named by sha256 (here links to the
 * fixture files, read in place), snapshots/<commit>/ of relative links to them, refs/main.
 */
export function handMadeCacheRepo(
  cacheDir: string,
  repo: string,
  folder: string,
  extra: Record<string, string> = {},
): { snapshot: string; commit: string } {
  const root = join(cacheDir, `models--${repo.replace("/", "--")}`);
  const commit = createHash("sha1").update(repo).digest("hex");
  const snapshot = join(root, "snapshots", commit);
  const files: Record<string, string> = { ...folderFiles(folder), ...extra };
  for (const [rel, src] of Object.entries(files)) {
    const sha = createHash("sha256").update(readFileSync(src)).digest("hex");
    const blob = join(root, "blobs", sha);
    mkdirSync(dirname(blob), { recursive: true });
    if (!existsSync(blob)) symlinkSync(src, blob);
    const pointer = join(snapshot, rel);
    mkdirSync(dirname(pointer), { recursive: true });
    symlinkSync(relative(dirname(pointer), blob), pointer);
  }
  mkdirSync(join(root, "refs"), { recursive: true });
  writeFileSync(join(root, "refs", "main"), commit);
  return { snapshot, commit };
}
