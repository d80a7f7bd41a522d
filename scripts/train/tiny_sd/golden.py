"""A parity fixture: inputs and this torch code's outputs for each network, computed from the exported fp16
weights. The project's test runs its ONNX graphs on the same inputs; equal outputs prove that our modules and the
project's builders are the same architecture, and that both file layouts carry the same weights."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from . import safetensors_io
from .bpe import Tokenizer
from .clip_text import CLIPTextModel
from .unet import UNet2DConditionModel
from .vae import AutoencoderKL

PROMPTS = ["a big red star on the left, blue background", ""]


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def write_golden(path: str, unet: UNet2DConditionModel, vae: AutoencoderKL, text: CLIPTextModel, tokenizer: Tokenizer, image: torch.Tensor, model_files: dict[str, str]) -> None:
    """`image`: one [1, 3, H, W] picture in [-1, 1]; `model_files`: role -> path, hashed into the metadata."""
    g = torch.Generator().manual_seed(1234)
    ids = torch.tensor([tokenizer.encode(p) for p in PROMPTS], dtype=torch.int64)
    context = text(ids)
    sample = torch.randn(2, unet.cfg.in_channels, unet.cfg.sample_size, unet.cfg.sample_size, generator=g)
    t_shared = torch.tensor([999.0])
    t_each = torch.tensor([10.0, 287.5])
    mean, logvar = vae.encode(image)
    latent = torch.randn(mean.shape, generator=g)
    tensors = {
        "input_ids": ids.numpy(),
        "text/last_hidden_state": context.numpy(),
        "unet/sample": sample.numpy(),
        "unet/encoder_hidden_states": context.numpy(),
        "unet/t_shared/timestep": t_shared.numpy(),
        "unet/t_shared/out": unet(sample, t_shared, context).numpy(),
        "unet/t_each/timestep": t_each.numpy(),
        "unet/t_each/out": unet(sample, t_each, context).numpy(),
        "vae/image": image.numpy(),
        "vae/mean": mean.numpy(),
        "vae/logvar": logvar.numpy(),
        "vae/latent": latent.numpy(),
        "vae/decoded": vae.decode(latent).numpy(),
    }
    meta = {"prompts": "\n".join(PROMPTS), **{f"sha256:{role}": sha256(p) for role, p in model_files.items()}}
    safetensors_io.write(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, meta)
