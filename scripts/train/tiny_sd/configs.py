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
    # SD1 stores the head COUNT under this name; diffusers keeps the quirk. SD2 and SDXL give one count per level.
    attention_head_dim: int | tuple[int, ...] = 4
    norm_num_groups: int = 16
    sample_size: int = 8
    in_channels: int = 4
    out_channels: int = 4
    norm_eps: float = 1e-5
    # What SD2 and SDXL change (the defaults are SD1's):
    # transformer blocks in each attention of a level (SDXL: 1, 2, 10); the mid block takes the last level's.
    transformer_layers_per_block: int | tuple[int, ...] = 1
    # proj_in/proj_out as Linear layers on [B, HW, C] tokens instead of 1x1 convolutions.
    use_linear_projection: bool = False
    # Scores in fp32 under half precision; nothing to do in fp32, kept so that the config round-trips.
    upcast_attention: bool = False
    # SDXL: "text_time" adds an embedding of the pooled text embeds and the size/crop time ids to the time embedding.
    addition_embed_type: str | None = None
    addition_time_embed_dim: int | None = None
    projection_class_embeddings_input_dim: int | None = None

    def per_level(self, value: int | tuple[int, ...]) -> tuple[int, ...]:
        """A per-level setting as a tuple, one entry per level (an int means the same at every level)."""
        levels = len(self.block_out_channels)
        out = (value,) * levels if isinstance(value, int) else tuple(value)
        if len(out) != levels:
            raise ValueError(f"{value} gives {len(out)} entries for {levels} levels")
        return out

    @classmethod
    def from_diffusers(cls, config: dict) -> "UNetConfig":
        """A diffusers unet/config.json; refuses the options these modules do not implement rather than ignore them."""
        unsupported = {
            "num_attention_heads": None, "time_cond_proj_dim": None, "class_embed_type": None, "num_class_embeds": None,
            "encoder_hid_dim": None, "reverse_transformer_layers_per_block": None, "only_cross_attention": False,
            "dual_cross_attention": False, "resnet_time_scale_shift": "default", "time_embedding_type": "positional",
            "mid_block_type": "UNetMidBlock2DCrossAttn", "center_input_sample": False, "flip_sin_to_cos": True, "freq_shift": 0,
            "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu", "conv_in_kernel": 3, "conv_out_kernel": 3,
            "attention_type": "default", "resnet_out_scale_factor": 1.0, "time_embedding_dim": None, "timestep_post_act": None,
        }
        for key, expected in unsupported.items():
            if config.get(key, expected) != expected:
                raise ValueError(f"unet config: {key}={config[key]!r} is not implemented (only {expected!r})")
        if config.get("addition_embed_type") not in (None, "text_time"):
            raise ValueError(f"unet config: addition_embed_type={config['addition_embed_type']!r} is not implemented")
        tup = lambda v: v if isinstance(v, int) else tuple(v)  # noqa: E731
        return cls(
            cross_attention_dim=config["cross_attention_dim"],
            block_out_channels=tuple(config["block_out_channels"]),
            down_block_types=tuple(config["down_block_types"]),
            up_block_types=tuple(config["up_block_types"]),
            layers_per_block=config["layers_per_block"],
            attention_head_dim=tup(config["attention_head_dim"]),
            norm_num_groups=config["norm_num_groups"],
            sample_size=config["sample_size"],
            in_channels=config["in_channels"],
            out_channels=config["out_channels"],
            norm_eps=config["norm_eps"],
            transformer_layers_per_block=tup(config.get("transformer_layers_per_block", 1)),
            use_linear_projection=config.get("use_linear_projection", False),
            upcast_attention=config.get("upcast_attention", False),
            addition_embed_type=config.get("addition_embed_type"),
            addition_time_embed_dim=config.get("addition_time_embed_dim"),
            projection_class_embeddings_input_dim=config.get("projection_class_embeddings_input_dim"),
        )

    def to_diffusers(self) -> dict:
        lst = lambda v: v if isinstance(v, int) else list(v)  # noqa: E731
        return {
            "_class_name": "UNet2DConditionModel",
            "_diffusers_version": "0.30.0",
            "act_fn": "silu",
            "attention_head_dim": lst(self.attention_head_dim),
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
            "use_linear_projection": self.use_linear_projection,
            "upcast_attention": self.upcast_attention,
            **({} if self.transformer_layers_per_block == 1 else {"transformer_layers_per_block": lst(self.transformer_layers_per_block)}),
            **({} if self.addition_embed_type is None else {
                "addition_embed_type": self.addition_embed_type,
                "addition_time_embed_dim": self.addition_time_embed_dim,
                "projection_class_embeddings_input_dim": self.projection_class_embeddings_input_dim,
            }),
        }
