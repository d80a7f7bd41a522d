import { describe, expect, it } from "vitest";
import { HubError, InputError } from "../../src/errors.js";
import { componentsOf, selectFiles } from "../../src/hub/file-selection.js";
import { parseModelRef } from "../../src/hub/model-ref.js";

/** The file list of stabilityai/stable-diffusion-xl-base-1.0 as the Hub lists it (abridged to one of each kind). */
const SDXL_REPO = [
  ".gitattributes",
  "LICENSE.md",
  "README.md",
  "model_index.json",
  "sd_xl_base_1.0.safetensors",
  "sd_xl_base_1.0_0.9vae.safetensors",
  "sd_xl_offset_example-lora_1.0.safetensors",
  "scheduler/scheduler_config.json",
  "text_encoder/config.json",
  "text_encoder/flax_model.msgpack",
  "text_encoder/model.fp16.safetensors",
  "text_encoder/model.onnx",
  "text_encoder/model.safetensors",
  "text_encoder/openvino_model.bin",
  "text_encoder/openvino_model.xml",
  "text_encoder_2/config.json",
  "text_encoder_2/model.fp16.safetensors",
  "text_encoder_2/model.safetensors",
  "text_encoder_2/model.onnx",
  "text_encoder_2/model.onnx_data",
  "tokenizer/merges.txt",
  "tokenizer/special_tokens_map.json",
  "tokenizer/tokenizer_config.json",
  "tokenizer/vocab.json",
  "tokenizer_2/merges.txt",
  "tokenizer_2/special_tokens_map.json",
  "tokenizer_2/tokenizer_config.json",
  "tokenizer_2/vocab.json",
  "unet/config.json",
  "unet/diffusion_flax_model.msgpack",
  "unet/diffusion_pytorch_model.fp16.safetensors",
  "unet/diffusion_pytorch_model.safetensors",
  "unet/model.onnx",
  "unet/model.onnx_data",
  "unet/openvino_model.bin",
  "vae/config.json",
  "vae/diffusion_flax_model.msgpack",
  "vae/diffusion_pytorch_model.fp16.safetensors",
  "vae/diffusion_pytorch_model.safetensors",
  "vae_1_0/config.json",
  "vae_1_0/diffusion_pytorch_model.fp16.safetensors",
  "vae_1_0/diffusion_pytorch_model.safetensors",
  "vae_decoder/config.json",
  "vae_decoder/model.onnx",
  "vae_encoder/config.json",
  "vae_encoder/model.onnx",
];

describe("which files of a repository a pull fetches", () => {
  it("a diffusers repository: configs, tokenizers and the fp16 safetensors of each component; no pickles, ONNX, Flax, OpenVINO or root single files", () => {
    const picked = selectFiles("stabilityai/stable-diffusion-xl-base-1.0", "main", SDXL_REPO, {});
    expect(picked.filter((f) => /\.safetensors$/.test(f)).sort()).toEqual([
      "text_encoder/model.fp16.safetensors",
      "text_encoder_2/model.fp16.safetensors",
      "unet/diffusion_pytorch_model.fp16.safetensors",
      "vae/diffusion_pytorch_model.fp16.safetensors",
      "vae_1_0/diffusion_pytorch_model.fp16.safetensors",
    ]);
    expect(picked).toContain("model_index.json");
    expect(picked).toContain("tokenizer_2/vocab.json");
    expect(picked).toContain("unet/config.json");
    expect(picked.filter((f) => /\.(bin|onnx|onnx_data|msgpack|xml|md)$|^sd_xl/.test(f))).toEqual([]);
  });

  it("without an fp16 variant, the plain safetensors; sharded weights come with their index", () => {
    const repo = [
      "model_index.json",
      "unet/config.json",
      "unet/diffusion_pytorch_model.safetensors.index.json",
      "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
      "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
      "unet/diffusion_pytorch_model.bin",
    ];
    expect(selectFiles("a/b", "main", repo, {}).sort()).toEqual([
      "model_index.json",
      "unet/config.json",
      "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
      "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
      "unet/diffusion_pytorch_model.safetensors.index.json",
    ]);
  });

  it("a component repository (ControlNet, TAESD) and a single-file repository; several files ask for :FILE", () => {
    expect(
      selectFiles(
        "c/n",
        "main",
        [
          "config.json",
          "diffusion_pytorch_model.bin",
          "diffusion_pytorch_model.fp16.safetensors",
          "diffusion_pytorch_model.safetensors",
          "README.md",
        ],
        {},
      ).sort(),
    ).toEqual(["config.json", "diffusion_pytorch_model.fp16.safetensors"]);
    expect(
      selectFiles("l/r", "main", ["pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin", "README.md"], {}),
    ).toEqual(["pytorch_lora_weights.safetensors"]);
    expect(() => selectFiles("m/x", "main", ["a.safetensors", "b.safetensors"], {})).toThrow(
      /m\/x@main holds several models \(a\.safetensors, b\.safetensors\): pull one as m\/x:FILE/,
    );
    expect(() => selectFiles("m/y", "main", ["model.ckpt"], {})).toThrow(HubError);
  });
});

describe("what `diffuse pull` takes", () => {
  it("a catalogue name, or OWNER/REPO[@REVISION][:FILE]", () => {
    expect(parseModelRef("SDXL")).toMatchObject({
      repo: "stabilityai/stable-diffusion-xl-base-1.0",
      revision: "main",
      entry: { name: "sdxl" },
    });
    expect(parseModelRef("a-b/c.d@refs/pr/3:unet/x.safetensors")).toEqual({
      repo: "a-b/c.d",
      revision: "refs/pr/3",
      file: "unet/x.safetensors",
    });
    expect(() => parseModelRef("not a model")).toThrow(InputError);
    expect(() => parseModelRef("a/b:../../etc/passwd")).toThrow(/a path inside the repository/);
  });
});

describe("a pipeline's components", () => {
  it("are the folders model_index.json names with a library and class; a second VAE folder is left out", () => {
    const index = {
      _class_name: "StableDiffusionXLPipeline",
      unet: ["diffusers", "UNet2DConditionModel"],
      vae: ["diffusers", "AutoencoderKL"],
      text_encoder: ["transformers", "CLIPTextModel"],
      text_encoder_2: ["transformers", "CLIPTextModelWithProjection"],
      tokenizer: ["transformers", "CLIPTokenizer"],
      tokenizer_2: ["transformers", "CLIPTokenizer"],
      scheduler: ["diffusers", "EulerDiscreteScheduler"],
      feature_extractor: [null, null],
      force_zeros_for_empty_prompt: true,
    };
    const components = componentsOf(index);
    expect(components.sort()).toEqual([
      "scheduler",
      "text_encoder",
      "text_encoder_2",
      "tokenizer",
      "tokenizer_2",
      "unet",
      "vae",
    ]);
    const picked = selectFiles("stabilityai/stable-diffusion-xl-base-1.0", "main", SDXL_REPO, { components });
    expect(picked.some((f) => f.startsWith("vae_1_0/") || f.startsWith("vae_decoder/"))).toBe(false);
    expect(picked).toContain("vae/diffusion_pytorch_model.fp16.safetensors");
  });
});
