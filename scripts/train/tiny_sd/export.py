"""Writing the trained model in both layouts the project loads: a diffusers folder and an SD1 single file."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from . import ldm_layout, safetensors_io
from .bpe import Tokenizer
from .clip_text import CLIPTextModel
from .ddpm import scheduler_config
from .unet import UNet2DConditionModel
from .vae import AutoencoderKL


def half(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """fp16 copies of the parameters, in state_dict order."""
    return {k: v.detach().to(torch.float16).numpy() for k, v in module.state_dict().items()}


def _json(path: str, value: dict) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def write_diffusers(folder: str, unet: UNet2DConditionModel, vae: AutoencoderKL, text: CLIPTextModel, tokenizer: Tokenizer, guidance_scale: float) -> None:
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    meta = {"format": "pt"}
    safetensors_io.write(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"), half(unet), meta)
    _json(os.path.join(folder, "unet", "config.json"), unet.cfg.to_diffusers())
    safetensors_io.write(os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors"), half(vae), meta)
    _json(os.path.join(folder, "vae", "config.json"), vae.cfg.to_diffusers())
    safetensors_io.write(os.path.join(folder, "text_encoder", "model.safetensors"), half(text), meta)
    _json(os.path.join(folder, "text_encoder", "config.json"), text.cfg.to_transformers())
    tokenizer.save(os.path.join(folder, "tokenizer"))
    _json(os.path.join(folder, "scheduler", "scheduler_config.json"), scheduler_config())
    # The guidance the project's pipeline uses when a prompt names none (read by src/pipeline/generation-config.ts).
    _json(os.path.join(folder, "generation_config.json"), {"guidance_scale": guidance_scale})
    _json(
        os.path.join(folder, "model_index.json"),
        {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.30.0",
            "feature_extractor": [None, None],
            "requires_safety_checker": False,
            "safety_checker": [None, None],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )


def write_single_file(path: str, unet: UNet2DConditionModel, vae: AutoencoderKL, text: CLIPTextModel) -> None:
    up_attention = [t == "CrossAttnUpBlock2D" for t in unet.cfg.up_block_types]
    tensors = ldm_layout.to_ldm(half(unet), half(vae), half(text), unet.cfg.layers_per_block, up_attention, len(vae.cfg.block_out_channels))
    safetensors_io.write(path, tensors, {"format": "pt"})


def load_diffusers(folder: str, unet: UNet2DConditionModel, vae: AutoencoderKL, text: CLIPTextModel) -> None:
    """Loads the written fp16 weights back (as fp32) into the modules: what the project's loader will see."""
    for module, file in ((unet, "unet/diffusion_pytorch_model.safetensors"), (vae, "vae/diffusion_pytorch_model.safetensors"), (text, "text_encoder/model.safetensors")):
        tensors, _ = safetensors_io.read(os.path.join(folder, file))
        module.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}, strict=True)
