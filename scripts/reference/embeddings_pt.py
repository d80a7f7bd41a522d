#!/usr/bin/python3
"""Textual-inversion embeddings as torch.save writes them, for test/fixtures/embeddings/ (a dev tool; the tests never
run it). Debian's python3-torch (1.13) on the CPU.

    /usr/bin/python3 scripts/reference/embeddings_pt.py --out test/fixtures/embeddings

  tiny-a1111.pt      A1111's layout: string_to_token, string_to_param {"*": [2, 32]}, name, step, sd_checkpoint...
  tiny-diffusers.bin diffusers' learned_embeds.bin: {"<tiny>": [32]}
  values.safetensors the same vectors, "a1111" [2, 32] and "diffusers" [32], to compare with
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from tiny_sd import safetensors_io  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    vectors = torch.randn(2, 32)
    single = torch.randn(32)
    torch.save(
        {
            "string_to_token": {"*": 265},
            "string_to_param": {"*": vectors.clone().requires_grad_(True)},
            "name": "tiny-a1111",
            "step": 500,
            "sd_checkpoint": "abcdef12",
            "sd_checkpoint_name": "tiny",
        },
        os.path.join(out, "tiny-a1111.pt"),
    )
    torch.save({"<tiny>": single}, os.path.join(out, "tiny-diffusers.bin"))
    safetensors_io.write(os.path.join(out, "values.safetensors"),
                         {"a1111": vectors.numpy(), "diffusers": single.numpy()})


if __name__ == "__main__":
    main()
