#!/usr/bin/python3
"""Tiny RRDBNet (ESRGAN / Real-ESRGAN) weights and reference outputs for test/fixtures/rrdbnet/.

A dev tool: Debian's python3-torch (1.13) and numpy on the CPU; the tests never run it. The architecture is written
here from the ESRGAN and Real-ESRGAN papers' description (residual-in-residual dense blocks of five 3x3 convs with
LeakyReLU(0.2) and residual scaling 0.2, a trunk conv, nearest x2 upsamplings each followed by a conv, an HR conv
and a last conv; Real-ESRGAN's x2 and x1 models pixel-unshuffle the input first), with Real-ESRGAN's module names.

    /usr/bin/python3 scripts/reference/rrdbnet.py --out test/fixtures/rrdbnet

Writes, for a tiny model per scale (num_feat 8, num_grow_ch 4, 2 blocks):
  x4-new.pth        Real-ESRGAN's key layout under "params_ema", torch.save's zip format
  x4-new.safetensors  the same keys, unwrapped
  x4-old.pth        the old ESRGAN layout (model.0, model.1.sub.N.RDBk.convj.0, ...), torch.save's legacy format,
                    fp16 storages, as old ESRGAN files were saved
  x4-old.safetensors  the same, fp32
  x2-new.pth        Real-ESRGAN x2 (pixel-unshuffle in front) under "params"
  x1-new.safetensors  Real-ESRGAN x1 (pixel-unshuffle by 4)
  outputs.safetensors  per model: "<name>/input" [1,3,H,W] in [0,1] and "<name>/output", torch's forward
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))

from tiny_sd import safetensors_io  # noqa: E402


class DenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x1 = act(self.conv1(x))
        x2 = act(self.conv2(torch.cat((x, x1), 1)))
        x3 = act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1 = DenseBlock(nf, gc)
        self.rdb2 = DenseBlock(nf, gc)
        self.rdb3 = DenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, scale: int, nf: int = 8, nb: int = 2, gc: int = 4):
        super().__init__()
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(3 * self.unshuffle**2, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = act(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = act(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(act(self.conv_hr(feat)))


def old_layout(sd: dict[str, torch.Tensor], nb: int) -> dict[str, torch.Tensor]:
    """The old ESRGAN Sequential's names: 0 conv_first, 1.sub (blocks, then trunk conv), 3 and 6 the up convs,
    8 the HR conv, 10 the last; the dense blocks' convs sit in Sequential(conv, act) as ".0"."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "body":
            n = k.replace(f"body.{parts[1]}.", f"model.1.sub.{parts[1]}.")
            n = n.replace(".rdb", ".RDB").replace(".weight", ".0.weight").replace(".bias", ".0.bias")
        else:
            n = {
                "conv_first": "model.0",
                "conv_body": f"model.1.sub.{nb}",
                "conv_up1": "model.3",
                "conv_up2": "model.6",
                "conv_hr": "model.8",
                "conv_last": "model.10",
            }[parts[0]] + "." + parts[1]
        out[n] = v
    return out


def numpy_dict(sd: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy().copy() for k, v in sd.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(1234)
    outputs: dict[str, np.ndarray] = {}
    nb = 2
    for scale, size in ((4, (9, 7)), (2, (10, 6)), (1, (8, 12))):
        net = RRDBNet(scale, nb=nb).eval()
        with torch.no_grad():
            for p in net.parameters():  # larger than the default init, so that every block matters
                p.mul_(3.0)
        sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            y = net(x)
        outputs[f"x{scale}/input"] = x.numpy()
        outputs[f"x{scale}/output"] = y.numpy()
        if scale == 4:
            torch.save({"params_ema": sd}, os.path.join(args.out, "x4-new.pth"))
            safetensors_io.write(os.path.join(args.out, "x4-new.safetensors"), numpy_dict(sd))
            old = old_layout(sd, nb)
            # fp16 storages (the old ESRGAN files were saved half), in the legacy non-zip format
            torch.save({k: v.half() for k, v in old.items()}, os.path.join(args.out, "x4-old.pth"),
                       _use_new_zipfile_serialization=False)
            safetensors_io.write(os.path.join(args.out, "x4-old.safetensors"), numpy_dict(old))
            with torch.no_grad():
                net.load_state_dict({k: v.half().float() for k, v in sd.items()})
                outputs["x4-half/output"] = net(x).numpy()
        elif scale == 2:
            torch.save({"params": sd}, os.path.join(args.out, "x2-new.pth"))
        else:
            safetensors_io.write(os.path.join(args.out, "x1-new.safetensors"), numpy_dict(sd))
    safetensors_io.write(os.path.join(args.out, "outputs.safetensors"), outputs, {"script": "scripts/reference/rrdbnet.py"})


if __name__ == "__main__":
    main()
