#!/usr/bin/python3
"""Does a trained tiny-shapes model listen to each kind of word? A dev tool for diagnosing the training.

First, how far apart the text encoder's output states are for captions that differ in one word (mean distance over
the 77 states, against their mean size): words it hardly tells apart cannot steer the UNet. Then, for single-object
training scenes, it compares the denoising loss with the true caption against the same caption
with one word swapped (colour, shape or position), at several noise levels: a word the model uses raises the loss
when it is wrong, most where the noise hides the picture. Then it shows where the model's estimate of the clean
picture puts the object's colour, from pure noise (t = 999, mean over 32 noise seeds), for each position word.

    /usr/bin/python3 scripts/train/probe_words.py [models/tiny-shapes] [--data .cache/tiny-shapes-data]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_sd import ddpm, export  # noqa: E402
from tiny_sd.bpe import Tokenizer  # noqa: E402
from tiny_sd.clip_text import CLIPTextModel  # noqa: E402
from tiny_sd.configs import TextConfig  # noqa: E402
from tiny_sd.data import ShapesDataset  # noqa: E402
from tiny_sd.unet import UNet2DConditionModel  # noqa: E402
from tiny_sd.vae import AutoencoderKL  # noqa: E402
from train_tiny_sd import REPO, TEXT, UNET, VAE  # noqa: E402

# One swap per kind of word: each word is replaced by another of its kind that the caption does not contain.
SWAPS = {
    "colour": {"red": "blue", "blue": "green", "green": "yellow", "yellow": "purple", "purple": "orange", "orange": "white", "white": "black", "black": "red"},
    "shape": {"circle": "square", "square": "triangle", "triangle": "star", "star": "cross", "cross": "circle"},
    "position": {"left": "right", "right": "left", "top": "bottom", "bottom": "top"},
}


def swap_first(caption: str, table: dict[str, str]) -> str | None:
    m = re.search(r"\b(" + "|".join(table) + r")\b", caption)
    return None if m is None else caption[: m.start()] + table[m.group(1)] + caption[m.end():]


def load_model(folder: str) -> tuple[Tokenizer, CLIPTextModel, UNet2DConditionModel, AutoencoderKL, float]:
    tokenizer = Tokenizer.load(os.path.join(folder, "tokenizer"))
    text = CLIPTextModel(TextConfig(vocab_size=len(tokenizer.vocab), bos_token_id=tokenizer.bos, eos_token_id=tokenizer.eos, pad_token_id=tokenizer.pad, **TEXT))
    unet, vae = UNet2DConditionModel(UNET), AutoencoderKL(VAE)
    export.load_diffusers(folder, unet, vae, text)
    with open(os.path.join(folder, "vae", "config.json")) as f:
        scale = json.load(f)["scaling_factor"]
    return tokenizer, text.eval(), unet.eval(), vae.eval(), scale


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=os.path.join(REPO, "models", "tiny-shapes"))
    p.add_argument("--data", default=os.path.join(REPO, ".cache", "tiny-shapes-data"))
    p.add_argument("--count", type=int, default=256, help="scenes to probe")
    args = p.parse_args()
    torch.set_num_threads(2)
    tokenizer, text, unet, vae, scale = load_model(args.model)
    data = ShapesDataset.load(args.data)

    # Single-object scenes whose caption names all three kinds of word, so every swap changes the prompt.
    chosen, captions = [], {kind: [] for kind in SWAPS}
    for i, caption in enumerate(data.captions):
        swapped = {kind: swap_first(caption, table) for kind, table in SWAPS.items()}
        if " and " in caption or None in swapped.values():
            continue
        chosen.append(i)
        for kind, s in swapped.items():
            captions[kind].append(s)
        if len(chosen) == args.count:
            break

    def encode(texts: list[str]) -> torch.Tensor:
        return text(torch.tensor([tokenizer.encode(t) for t in texts]))

    true = encode([data.captions[i] for i in chosen])
    print(f"{args.model}: text encoder states, true caption against one word swapped, over {len(chosen)} captions")
    size = true.norm(dim=-1).mean().item()
    for kind, c in captions.items():
        moved = (encode(c) - true).norm(dim=-1).mean().item()
        print(f"  {kind:8s} distance {moved:.3f} ({moved / size:.1%} of a state's size {size:.2f})")
    print()

    mean, _ = vae.encode(data.batch(np.array(chosen)))
    z0 = mean * scale
    contexts = {"true": true} | {kind: encode(c) for kind, c in captions.items()}
    ac = ddpm.alphas_cumprod()
    g = torch.Generator().manual_seed(0)
    print(f"{args.model}: denoising loss on {len(chosen)} scenes, true caption against one word swapped (relative rise)")
    print("| t | true | " + " | ".join(f"{k} swapped" for k in SWAPS) + " |")
    print("| --- | --- |" + " --- |" * len(SWAPS))
    for t in (999, 900, 800, 700, 500, 300):
        noise = torch.randn(z0.shape, generator=g)
        tt = torch.full((len(chosen),), t)
        xt = ddpm.add_noise(z0, noise, tt, ac)
        loss = {name: ((unet(xt, tt, ctx) - noise) ** 2).mean().item() for name, ctx in contexts.items()}
        print(f"| {t} | {loss['true']:.5f} | " + " | ".join(f"{loss[k]:.5f} ({loss[k] / loss['true'] - 1:+.1%})" for k in SWAPS) + " |")

    print("\nwhere the clean-picture estimate at t = 999 puts red (centroid in pixels, mean of 32 noise seeds):")
    x = torch.randn(32, 4, UNET.sample_size, UNET.sample_size, generator=torch.Generator().manual_seed(1))
    t = torch.full((32,), 999)
    for where in ("on the left", "on the right", "at the top", "at the bottom", "in the centre"):
        eps = unet(x, t, encode([f"a big red circle {where}, blue background"] * 32))
        z = (x - (1 - ac[999]).sqrt() * eps) / ac[999].sqrt()
        img = vae.decode(z.clamp(-4, 4) / scale)
        red = (img[:, 0] - img[:, 2]).clamp(min=0).mean(0)
        ys, xs = torch.meshgrid(torch.arange(red.shape[0]), torch.arange(red.shape[1]), indexing="ij")
        w = red / red.sum()
        print(f"  {where:14s} x {(w * xs).sum():5.1f}  y {(w * ys).sum():5.1f}")


if __name__ == "__main__":
    main()
