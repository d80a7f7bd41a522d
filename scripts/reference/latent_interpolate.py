#!/usr/bin/python3
"""Reference outputs of torch.nn.functional.interpolate in AUTOMATIC1111's latent upscale modes, for
test/fixtures/interpolate/latent-modes.json.

A1111's hires fix resizes the latents with `interpolate(samples, size=(h, w), mode=..., antialias=...)` for the
upscalers "Latent" (bilinear), "Latent (antialiased)" (bilinear, antialias), "Latent (bicubic)", "Latent (bicubic
antialiased)", "Latent (nearest)" and "Latent (nearest-exact)". This computes what PyTorch gives for a small fixed
input at several sizes (up, down, odd ratios), so src/image/interpolate.ts is checked against PyTorch itself.

A dev tool: Debian's python3-torch on the CPU; the tests never run it.

    /usr/bin/python3 scripts/reference/latent_interpolate.py > test/fixtures/interpolate/latent-modes.json
"""
import json
import sys

import torch

MODES = [("nearest", False), ("nearest-exact", False), ("bilinear", False), ("bilinear", True),
         ("bicubic", False), ("bicubic", True)]
# (in_h, in_w) -> (out_h, out_w): the hires fix's doubling, odd ratios, and shrinking (antialias matters there).
SIZES = [((3, 4), (6, 8)), ((3, 4), (7, 5)), ((5, 6), (3, 4)), ((4, 4), (9, 13)), ((6, 5), (2, 2))]


def main() -> None:
    gen = torch.Generator().manual_seed(1234)
    cases = []
    for (ih, iw), (oh, ow) in SIZES:
        # Two images, two channels: the batch and channel layout is exercised too.
        x = torch.randn((2, 2, ih, iw), generator=gen, dtype=torch.float32)
        for mode, aa in MODES:
            kwargs = {"antialias": True} if aa else {}
            y = torch.nn.functional.interpolate(x, size=(oh, ow), mode=mode, **kwargs)
            cases.append('{"mode": %s, "antialias": %s, "shape": %s, "out": %s, "input": %s, "output": %s}' % (
                json.dumps(mode), json.dumps(aa), json.dumps(list(x.shape)), json.dumps([oh, ow]), floats(x), floats(y)))
    sys.stdout.write('{"torch": %s, "cases": [\n%s\n]}\n' % (json.dumps(torch.__version__), ",\n".join(cases)))


def floats(t: torch.Tensor) -> str:
    # 9 significant digits hold a float32 exactly.
    return "[" + ",".join("%.9g" % v for v in t.flatten().tolist()) + "]"


if __name__ == "__main__":
    main()
