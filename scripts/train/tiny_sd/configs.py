"""Typed architecture configs, with the config.json each one is published as in a diffusers folder."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VaeConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 64, 64)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    # Measured after training (1 / std of the latents), like SD's 0.18215; placeholder until then.
    scaling_factor: float = 1.0

    def to_diffusers(self) -> dict:
        n = len(self.block_out_channels)
        return {
            "_class_name": "AutoencoderKL",
            "_diffusers_version": "0.30.0",
            "act_fn": "silu",
            "block_out_channels": list(self.block_out_channels),
            "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n,
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": self.latent_channels,
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": self.norm_num_groups,
            "sample_size": 64,
            "scaling_factor": self.scaling_factor,
            "force_upcast": False,
            "use_quant_conv": True,
            "use_post_quant_conv": True,
            "mid_block_add_attention": True,
        }


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 3
    num_attention_heads: int = 2
    max_position_embeddings: int = 77
    layer_norm_eps: float = 1e-5
    bos_token_id: int = 0
    eos_token_id: int = 0
    pad_token_id: int = 0

    def to_transformers(self) -> dict:
        return {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "attention_dropout": 0.0,
            "dropout": 0.0,
            "hidden_act": "quick_gelu",
            "hidden_size": self.hidden_size,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "layer_norm_eps": self.layer_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "projection_dim": self.hidden_size,
            "vocab_size": self.vocab_size,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": "float16",
            "transformers_version": "4.44.0",
        }


@dataclass(frozen=True)
class UNetConfig:
    cross_attention_dim: int
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    up_block_types: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    layers_per_block: int = 1
    # SD1 stores the head COUNT under this name; diffusers keeps the quirk.
    attention_head_dim: int = 4
    norm_num_groups: int = 16
    sample_size: int = 8
    in_channels: int = 4
    out_channels: int = 4
    norm_eps: float = 1e-5

    def to_diffusers(self) -> dict:
        return {
            "_class_name": "UNet2DConditionModel",
            "_diffusers_version": "0.30.0",
            "act_fn": "silu",
            "attention_head_dim": self.attention_head_dim,
            "block_out_channels": list(self.block_out_channels),
            "center_input_sample": False,
            "cross_attention_dim": self.cross_attention_dim,
            "down_block_types": list(self.down_block_types),
            "downsample_padding": 1,
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "in_channels": self.in_channels,
            "layers_per_block": self.layers_per_block,
            "mid_block_scale_factor": 1,
            "norm_eps": self.norm_eps,
            "norm_num_groups": self.norm_num_groups,
            "out_channels": self.out_channels,
            "sample_size": self.sample_size,
            "up_block_types": list(self.up_block_types),
            "use_linear_projection": False,
            "upcast_attention": False,
        }
