"""diffusers/transformers names -> the original single-file (LDM) names of an SD1 checkpoint.

The inverse of the project's loader map (src/weights/ldm-keymap.ts): the LDM UNet numbers its blocks with one
running index per side (input_blocks / output_blocks), the LDM VAE decoder counts its levels bottom-up and
stores attention projections as 1x1 convolutions.
"""
from __future__ import annotations

import re

import numpy as np

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2", "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _leaf(table: dict[str, str], rest: str, name: str) -> str:
    for k, v in table.items():
        if rest.startswith(k + "."):
            return v + rest[len(k):]
    raise KeyError(f"no LDM name for {name}")


def unet_name(name: str, layers_per_block: int, up_has_attention: list[bool]) -> str:
    L = layers_per_block
    for k, v in _UNET_TOP.items():
        if name.startswith(k + "."):
            return v + name[len(k):]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$", name):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        block = 1 + level * (L + 1) + j
        return f"input_blocks.{block}.0.{_leaf(_RESNET, rest, name)}" if kind == "resnets" else f"input_blocks.{block}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", name):
        return f"input_blocks.{1 + int(m[1]) * (L + 1) + L}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)$", name):
        kind, j, rest = m[1], int(m[2]), m[3]
        return f"middle_block.1.{rest}" if kind == "attentions" else f"middle_block.{2 * j}.{_leaf(_RESNET, rest, name)}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$", name):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        block = level * (L + 1) + j
        return f"output_blocks.{block}.0.{_leaf(_RESNET, rest, name)}" if kind == "resnets" else f"output_blocks.{block}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", name):
        level = int(m[1])
        # The upsampler follows the last ResNet and, where the level has one, its transformer.
        return f"output_blocks.{level * (L + 1) + L}.{2 if up_has_attention[level] else 1}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet tensor {name}")


def vae_name(name: str, levels: int) -> str:
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)$", name):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_leaf(_VAE_RESNET, m[3], name)}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)$", name):
        return f"{m[1]}.mid.attn_1.{_leaf(_VAE_ATTN, m[2], name)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", name):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_leaf(_VAE_RESNET, m[3], name)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", name):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", name):
        return f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{_leaf(_VAE_RESNET, m[3], name)}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", name):
        return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.+)$", name):
        return f"{m[1]}.norm_out.{m[2]}"
    if re.match(r"(encoder|decoder)\.(conv_in|conv_out)\.|(quant_conv|post_quant_conv)\.", name):
        return name
    raise KeyError(f"no LDM name for VAE tensor {name}")


def to_ldm(unet: dict[str, np.ndarray], vae: dict[str, np.ndarray], text: dict[str, np.ndarray], layers_per_block: int, up_has_attention: list[bool], vae_levels: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in unet.items():
        out[UNET_PREFIX + unet_name(k, layers_per_block, up_has_attention)] = v
    for k, v in vae.items():
        ldm = vae_name(k, vae_levels)
        # The LDM VAE's attention projections are 1x1 convolutions: same numbers, [C, C, 1, 1].
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out[VAE_PREFIX + ldm] = v
    for k, v in text.items():
        out[TEXT_PREFIX + k] = v
    if len(out) != len(unet) + len(vae) + len(text):
        raise AssertionError("two tensors map to the same LDM name")
    return out
