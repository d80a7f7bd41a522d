"""UNet2DConditionModel of Stable Diffusion (diffusers' module tree and parameter names).

SD1 by default; the config switches on what SD2 and SDXL change: linear proj_in/proj_out, a head count and a
transformer depth per level, and SDXL's added embedding of pooled text embeds and size/crop time ids.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attend
from .linear import Linear
from .configs import UNetConfig


class ResnetBlock2D(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Attention(nn.Module):
    """diffusers' Attention as the UNet uses it: no q/k/v biases, output projection in a list (to_out.0)."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = Linear(dim, dim, bias=False)
        self.to_k = Linear(context_dim, dim, bias=False)
        self.to_v = Linear(context_dim, dim, bias=False)
        self.to_out = nn.ModuleList([Linear(dim, dim)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if context is None else context
        return self.to_out[0](attend(self.to_q(x), self.to_k(kv), self.to_v(kv), self.heads))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        # net.1 is a Dropout in diffusers; an Identity keeps the index of net.2 without adding parameters.
        self.net = nn.ModuleList([GEGLU(dim, dim * 4), nn.Identity(), Linear(dim * 4, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, context_dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    def __init__(self, channels: int, context_dim: int, heads: int, groups: int, depth: int = 1, linear: bool = False):
        super().__init__()
        # eps 1e-6 here whatever norm_eps says: diffusers hard-codes it.
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        # SD1 projects with 1x1 convolutions on the feature map, SD2 and SDXL with Linear layers on the tokens:
        # the same arithmetic, but the weights are stored [C, C, 1, 1] or [C, C].
        self.linear = linear
        self.proj_in = Linear(channels, channels) if linear else nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, context_dim, heads) for _ in range(depth)])
        self.proj_out = Linear(channels, channels) if linear else nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.norm(x)
        if self.linear:
            t = self.proj_in(t.reshape(b, c, h * w).transpose(1, 2))
        else:
            t = self.proj_in(t).reshape(b, c, h * w).transpose(1, 2)
        for block in self.transformer_blocks:
            t = block(t, context)
        if self.linear:
            return self.proj_out(t).transpose(1, 2).reshape(b, c, h, w) + x
        return self.proj_out(t.transpose(1, 2).reshape(b, c, h, w)) + x


class Downsample2D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        # `size`: the skip connection's size when the latent is not divisible by 2^(levels-1), e.g. 5 -> 9, not 10.
        up = F.interpolate(x, scale_factor=2.0, mode="nearest") if size is None else F.interpolate(x, size=size, mode="nearest")
        return self.conv(up)


class Block(nn.Module):
    """A down or up block: `resnets`, optional `attentions` after each, optional `downsamplers`/`upsamplers`."""

    def __init__(self, resnets: list[ResnetBlock2D], attentions: list[Transformer2DModel] | None, sampler: str | None, channels: int):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions) if attentions else None
        if sampler == "down":
            self.downsamplers = nn.ModuleList([Downsample2D(channels)])
        elif sampler == "up":
            self.upsamplers = nn.ModuleList([Upsample2D(channels)])


class TimestepEmbedding(nn.Module):
    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.linear_1 = Linear(cin, dim)
        self.linear_2 = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features with flip_sin_to_cos=True and freq_shift=0: [cos | sin]."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / half
    args = t.float()[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.block_out_channels
        levels = len(ch)
        temb = ch[0] * 4
        g, eps, ctx = cfg.norm_num_groups, cfg.norm_eps, cfg.cross_attention_dim
        heads, depth, linear = cfg.per_level(cfg.attention_head_dim), cfg.per_level(cfg.transformer_layers_per_block), cfg.use_linear_projection
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        if cfg.addition_embed_type == "text_time":
            # SDXL: sinusoidal features of each time id, concatenated after the pooled text embeds, then an MLP.
            self.add_embedding = TimestepEmbedding(cfg.projection_class_embeddings_input_dim, temb)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)

        skips = [ch[0]]
        prev = ch[0]
        down = []
        for i in range(levels):
            resnets, attentions = [], []
            for _ in range(cfg.layers_per_block):
                resnets.append(ResnetBlock2D(prev, ch[i], temb, g, eps))
                prev = ch[i]
                if cfg.down_block_types[i] == "CrossAttnDownBlock2D":
                    attentions.append(Transformer2DModel(prev, ctx, heads[i], g, depth[i], linear))
                skips.append(prev)
            last = i == levels - 1
            if not last:
                skips.append(prev)
            down.append(Block(resnets, attentions, None if last else "down", prev))
        self.down_blocks = nn.ModuleList(down)

        mid_attention = Transformer2DModel(prev, ctx, heads[-1], g, depth[-1], linear)
        mid = Block([ResnetBlock2D(prev, prev, temb, g, eps), ResnetBlock2D(prev, prev, temb, g, eps)], [mid_attention], None, prev)
        self.mid_block = mid

        up = []
        rev = list(reversed(ch))
        for i in range(levels):
            resnets, attentions = [], []
            for _ in range(cfg.layers_per_block + 1):
                resnets.append(ResnetBlock2D(prev + skips.pop(), rev[i], temb, g, eps))
                prev = rev[i]
                if cfg.up_block_types[i] == "CrossAttnUpBlock2D":
                    attentions.append(Transformer2DModel(prev, ctx, heads[levels - 1 - i], g, depth[levels - 1 - i], linear))
            up.append(Block(resnets, attentions, None if i == levels - 1 else "up", prev))
        self.up_blocks = nn.ModuleList(up)

        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        text_embeds: torch.Tensor | None = None,
        time_ids: torch.Tensor | None = None,
        down_residuals: list[torch.Tensor] | None = None,
        mid_residual: torch.Tensor | None = None,
        intrablock_residuals: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """`text_embeds` [B, pooled] and `time_ids` [B, 6]: SDXL's added conditions (addition_embed_type "text_time").
        `down_residuals` (one per skip connection) and `mid_residual`: a ControlNet's outputs, added to the skip
        connections and to the mid block's output as diffusers' down_block_additional_residuals and
        mid_block_additional_residual are. `intrablock_residuals`: a T2I-Adapter's features, added inside the down
        blocks as diffusers' down_intrablock_additional_residuals are (encoder_pass)."""
        temb = time_embedding(self, sample.shape[0], timestep, text_embeds, time_ids)
        # Every level halves the size, rounding up (stride-2 convolution with padding 1). When the size is not
        # divisible by 2^(levels-1), doubling on the way up would overshoot the skip connection; the reference
        # then upsamples to the skip's size instead.
        ups = sum(hasattr(b, "upsamplers") for b in self.up_blocks)
        forward_size = any(d % (2**ups) != 0 for d in sample.shape[-2:])
        h, skips = encoder_pass(self, self.conv_in(sample), temb, context, intrablock_residuals)
        if down_residuals is not None:
            if len(down_residuals) != len(skips):
                raise ValueError(f"{len(down_residuals)} down residuals for {len(skips)} skip connections")
            skips = [s + r for s, r in zip(skips, down_residuals)]
        if mid_residual is not None:
            h = h + mid_residual
        for block in self.up_blocks:
            for j, resnet in enumerate(block.resnets):
                h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
                if block.attentions is not None:
                    h = block.attentions[j](h, context)
            if hasattr(block, "upsamplers"):
                h = block.upsamplers[0](h, tuple(skips[-1].shape[-2:]) if forward_size else None)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def time_embedding(net: nn.Module, batch: int, timestep: torch.Tensor, text_embeds: torch.Tensor | None = None, time_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The time embedding (plus SDXL's added conditions) of a UNet, or of a ControlNet, which has the same modules."""
    if timestep.dim() == 0:
        timestep = timestep[None]
    timestep = timestep.expand(batch)
    cfg = net.cfg
    temb = net.time_embedding(timestep_features(timestep, cfg.block_out_channels[0]))
    if cfg.addition_embed_type == "text_time":
        if text_embeds is None or time_ids is None:
            raise ValueError("this UNet (addition_embed_type text_time) needs text_embeds and time_ids")
        ids = timestep_features(time_ids.flatten(), cfg.addition_time_embed_dim).reshape(batch, -1)
        temb = temb + net.add_embedding(torch.cat([text_embeds, ids], dim=-1))
    return temb


def encoder_pass(
    net: nn.Module, h: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, intrablock: list[torch.Tensor] | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The encoder half of a UNet, or of a ControlNet, from conv_in's output: the mid block's output and every skip
    connection (conv_in's output first), in the order the up path takes them back.

    `intrablock` (a T2I-Adapter's features, consumed in order) as diffusers' UNet adds them: a cross-attention down
    block adds the next one to the output of its last ResNet-and-attention pair (so to that skip connection and to
    what its downsampler reads); a plain down block adds it to its own output, after its downsampler, and in place,
    so to the last skip connection as well; one left over of the mid block's shape is added to the mid block's output."""
    pending = list(intrablock or [])
    skips = [h]
    for block in net.down_blocks:
        for j, resnet in enumerate(block.resnets):
            h = resnet(h, temb)
            if block.attentions is not None:
                h = block.attentions[j](h, context)
                if j == len(block.resnets) - 1 and pending:
                    h = h + pending.pop(0)
            skips.append(h)
        if hasattr(block, "downsamplers"):
            h = block.downsamplers[0](h)
            skips.append(h)
        if block.attentions is None and pending:
            h = h + pending.pop(0)
            skips[-1] = h
    h = net.mid_block.resnets[0](h, temb)
    h = net.mid_block.attentions[0](h, context)
    h = net.mid_block.resnets[1](h, temb)
    if pending and pending[0].shape == h.shape:
        h = h + pending.pop(0)
    if pending:
        raise ValueError(f"{len(pending)} adapter features left over: the adapter does not fit this UNet")
    return h, skips
