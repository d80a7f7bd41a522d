"""ControlNetModel of diffusers (guess mode off, no pooled conditions), with its module tree and parameter names.

A copy of a UNet's encoder half (time embedding, conv_in, down blocks, mid block), a conditioning embedding that
turns the control image into conv_in-sized features, and one zero-initialised 1x1 convolution per skip connection
and for the mid block. The encoder modules are built by UNet2DConditionModel itself and run by the same
encoder_pass, so the two cannot drift apart.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .configs import UNetConfig
from .unet import UNet2DConditionModel, encoder_pass, time_embedding


def zero(conv: nn.Conv2d) -> nn.Conv2d:
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
    return conv


class ControlNetConditioningEmbedding(nn.Module):
    """conv_in and SiLU, then per level but the last a same-size conv and a stride-2 conv (each with SiLU), then
    conv_out, zero at the start so the new branch adds nothing until it has learned something."""

    def __init__(self, out_channels: int, levels: tuple[int, ...], conditioning_channels: int = 3):
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, levels[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i in range(len(levels) - 1):
            blocks.append(nn.Conv2d(levels[i], levels[i], 3, padding=1))
            blocks.append(nn.Conv2d(levels[i], levels[i + 1], 3, padding=1, stride=2))
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = zero(nn.Conv2d(levels[-1], out_channels, 3, padding=1))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv_in(cond))
        for block in self.blocks:
            h = F.silu(block(h))
        return self.conv_out(h)


class ControlNetModel(nn.Module):
    def __init__(self, cfg: UNetConfig, embedding_channels: tuple[int, ...] = (16, 32, 96, 256)):
        super().__init__()
        if cfg.addition_embed_type is not None:
            raise ValueError("this ControlNet implements SD1/SD2 UNets only (no added text_time conditions)")
        self.cfg = cfg
        self.embedding_channels = tuple(embedding_channels)
        template = UNet2DConditionModel(cfg)
        self.time_embedding = template.time_embedding
        self.conv_in = template.conv_in
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(cfg.block_out_channels[0], self.embedding_channels)
        self.down_blocks = template.down_blocks
        self.mid_block = template.mid_block
        # One zero conv per skip connection, in the order encoder_pass collects them.
        with torch.no_grad():
            _, skips = encoder_pass(template, template.conv_in(torch.zeros(1, cfg.in_channels, 8, 8)), torch.zeros(1, cfg.block_out_channels[0] * 4), torch.zeros(1, 1, cfg.cross_attention_dim))
        self.controlnet_down_blocks = nn.ModuleList([zero(nn.Conv2d(s.shape[1], s.shape[1], 1)) for s in skips])
        mid = cfg.block_out_channels[-1]
        self.controlnet_mid_block = zero(nn.Conv2d(mid, mid, 1))

    @staticmethod
    def from_unet(unet: UNet2DConditionModel, embedding_channels: tuple[int, ...] = (16, 32, 96, 256)) -> "ControlNetModel":
        """ControlNet's starting point: the encoder half copied from the trained UNet, everything new at zero."""
        net = ControlNetModel(unet.cfg, embedding_channels)
        for name in ("time_embedding", "conv_in", "down_blocks", "mid_block"):
            setattr(net, name, copy.deepcopy(getattr(unet, name)))
        # The copies are trained, whatever the UNet they came from is (frozen, as a rule, while its ControlNet trains).
        return net.requires_grad_(True)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, cond: torch.Tensor, scale: float = 1.0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """`cond`: the control map [B, 3, 8h, 8w] in [0, 1]. Returns the down residuals and the mid residual."""
        temb = time_embedding(self, sample.shape[0], timestep)
        h, skips = encoder_pass(self, self.conv_in(sample) + self.controlnet_cond_embedding(cond), temb, context)
        down = [conv(s) * scale for conv, s in zip(self.controlnet_down_blocks, skips)]
        return down, self.controlnet_mid_block(h) * scale

    def to_diffusers(self) -> dict:
        """config.json of a diffusers ControlNet folder."""
        unet = self.cfg.to_diffusers()
        keep = ("act_fn", "attention_head_dim", "block_out_channels", "cross_attention_dim", "down_block_types", "downsample_padding",
                "flip_sin_to_cos", "freq_shift", "in_channels", "layers_per_block", "mid_block_scale_factor", "norm_eps", "norm_num_groups",
                "upcast_attention", "use_linear_projection")
        return {
            "_class_name": "ControlNetModel",
            "_diffusers_version": "0.30.0",
            **{k: unet[k] for k in keep},
            "class_embed_type": None,
            "conditioning_channels": 3,
            "conditioning_embedding_out_channels": list(self.embedding_channels),
            "controlnet_conditioning_channel_order": "rgb",
            "global_pool_conditions": False,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "num_class_embeds": None,
            "only_cross_attention": False,
            "projection_class_embeddings_input_dim": None,
            "resnet_time_scale_shift": "default",
            "transformer_layers_per_block": 1,
        }
