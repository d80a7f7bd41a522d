import type { FastifyInstance } from "fastify";
import { AdapterFolder, defaultAdapterFolders } from "../pipeline/adapter-folder.js";
import { TextualInversions } from "../pipeline/textual-inversions.js";
import type { EmbeddingFile } from "../weights/embedding-file.js";
import { SafetensorsFile } from "../weights/safetensors.js";
import { describeModel } from "./catalog.js";
import type { ServerContext } from "./context.js";

/**
 * A1111's routes for LoRAs and textual-inversion embeddings, answered as its Lora extension and its API answer
 * them: `GET /sdapi/v1/loras` ([{name, alias, path, metadata}]), `POST /sdapi/v1/refresh-loras` (null),
 * `GET /sdapi/v1/embeddings` ({loaded, skipped}: embeddings that fit the model's text encoders and those that do
 * not) and `POST /sdapi/v1/refresh-embeddings` (null). The folders are the ones the model's worker reads
 * (`serve --lora-dir`, `--embeddings-dir`); only .safetensors files are listed, the only ones diffuse applies.
 */
/** The torch.save LoRAs A1111 lists beside .safetensors ones (kohya saves .pt), read as data when used. */
const LORA_PICKLE = /\.(pt|ckpt)$/i;

export function registerExtraNetworkRoutes(scope: FastifyInstance, ctx: ServerContext): void {
  const options = ctx.config.loadOptions ?? {};
  const folders = adapterFolders(ctx);
  const loras = new AdapterFolder(folders.loras, "LoRA");
  const embeddingsFolder = new AdapterFolder(folders.embeddings, "embedding");
  let embeddings: TextualInversions | undefined;

  scope.get("/sdapi/v1/loras", async () =>
    loras
      .list()
      .filter((e) => !e.pickle || LORA_PICKLE.test(e.path))
      .map((e) => {
        const metadata = readMetadata(e.path);
        return {
          name: e.name,
          alias: typeof metadata["ss_output_name"] === "string" ? metadata["ss_output_name"] : e.name,
          path: e.path,
          metadata,
        };
      }),
  );

  scope.post("/sdapi/v1/refresh-loras", async () => {
    loras.refresh();
    return null;
  });

  scope.get("/sdapi/v1/embeddings", async () => {
    // Which embeddings fit depends on the model's text encoders, known once it is loaded.
    embeddings ??= new TextualInversions(
      (await describeModel(ctx.model)).textEncoders,
      options.embeddings ?? [],
      embeddingsFolder,
    );
    const { loaded, skipped } = embeddings.current();
    return { loaded: byName(loaded), skipped: byName(skipped) };
  });

  scope.post("/sdapi/v1/refresh-embeddings", async () => {
    embeddings?.refresh();
    return null;
  });
}

/** The LoRA and embedding folders the served model's worker reads (`serve --lora-dir`, `--embeddings-dir`). */
export function adapterFolders(ctx: ServerContext): { loras: string; embeddings: string } {
  const options = ctx.config.loadOptions ?? {};
  const defaults = defaultAdapterFolders();
  return { loras: options.loraDir ?? defaults.loras, embeddings: options.embeddingsDir ?? defaults.embeddings };
}

/** A1111's description of each embedding (step and checkpoint fields come from .pt files; safetensors have none). */
function byName(
  files: readonly EmbeddingFile[],
): Record<string, { step: null; sd_checkpoint: null; sd_checkpoint_name: null; shape: number; vectors: number }> {
  return Object.fromEntries(
    files.map((f) => [
      f.name,
      { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: f.shape, vectors: f.vectors },
    ]),
  );
}

/**
 * A LoRA's safetensors metadata as A1111 hands it out: values that hold JSON objects (kohya's ss_tag_frequency,
 * ss_dataset_dirs) parsed, the rest as written; an unreadable file has none.
 */
function readMetadata(path: string): Record<string, unknown> {
  let file: SafetensorsFile;
  try {
    file = SafetensorsFile.open(path);
  } catch {
    return {};
  }
  try {
    return Object.fromEntries(
      Object.entries(file.metadata).map(([k, v]) => {
        if (!v.startsWith("{")) return [k, v];
        try {
          return [k, JSON.parse(v) as unknown];
        } catch {
          return [k, v];
        }
      }),
    );
  } finally {
    file.close();
  }
}
