"""diffusers' T2IAdapter (FullAdapter for SD1.x/SD2, FullAdapterXL for SDXL) in plain PyTorch, with diffusers' module
names (`adapter.conv_in`, `adapter.body.N.in_conv`, `adapter.body.N.resnets.M.block1/block2`), written from its
description: the control image is pixel-unshuffled by the downscale factor, conv_in widens it to the first level's
channels, then one block per feature map, each an optional 2x average pool (ceil mode), an optional 1x1 conv where
the width changes, and ResNet-like blocks (3x3 conv, ReLU, 1x1 conv, plus the input). Each block's output is one
feature map for the UNet (added inside its down blocks: unet.py, `intrablock_residuals`)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class AdapterResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.block2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block2(F.relu(self.block1(x)))


class AdapterBlock(nn.Module):
    def __init__(self, cin: int, cout: int, res_blocks: int, down: bool):
        super().__init__()
        self.down = down
        if cin != cout:
            self.in_conv = nn.Conv2d(cin, cout, 1)
        self.resnets = nn.Sequential(*[AdapterResnetBlock(cout) for _ in range(res_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
        if hasattr(self, "in_conv"):
            x = self.in_conv(x)
        return self.resnets(x)


class Adapter(nn.Module):
    """`xl`: FullAdapterXL's layout (one downsampling block, the third; the first two at the unshuffled size)."""

    def __init__(self, in_channels: int, channels: list[int], res_blocks: int, downscale: int, xl: bool = False):
        super().__init__()
        self.downscale = downscale
        self.conv_in = nn.Conv2d(in_channels * downscale * downscale, channels[0], 3, padding=1)
        blocks = []
        for i, c in enumerate(channels):
            if xl:
                # Only blocks 1 and 2 change the width; only block 2 halves the size.
                cin, down = (channels[i - 1] if i in (1, 2) else c), i == 2
            else:
                cin, down = channels[max(i - 1, 0)], i > 0
            blocks.append(AdapterBlock(cin, c, res_blocks, down))
        self.body = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv_in(F.pixel_unshuffle(x, self.downscale))
        features = []
        for block in self.body:
            h = block(h)
            features.append(h)
        return features


class T2IAdapter(nn.Module):
    """The diffusers wrapper: the network sits under `adapter.`."""

    def __init__(self, in_channels: int, channels: list[int], res_blocks: int, downscale: int, xl: bool = False):
        super().__init__()
        self.adapter = Adapter(in_channels, channels, res_blocks, downscale, xl)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.adapter(x)


def tencentarc_state_dict(model: T2IAdapter, res_blocks: int) -> dict[str, torch.Tensor]:
    """The same weights under TencentARC's original names: one flat `body.K` list of ResNet blocks (K = block *
    res_blocks + resnet), each block's 1x1 widening conv on its first ResNet (`body.K.in_conv`), `conv_in` at the root."""
    out = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")[1:]  # drop "adapter"
        if parts[0] == "body":
            block = int(parts[1])
            if parts[2] == "in_conv":
                parts = ["body", str(block * res_blocks), "in_conv", *parts[3:]]
            else:  # resnets.M.<conv>.<param>
                parts = ["body", str(block * res_blocks + int(parts[3])), *parts[4:]]
        out[".".join(parts)] = value
    return out
