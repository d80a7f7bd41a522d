#!/usr/bin/python3
"""Re-saves a single-file .safetensors checkpoint as a .ckpt, laid out as Stable Diffusion's training code saved
sd-v1-4.ckpt with PyTorch Lightning 1.4: {"epoch", "global_step", "pytorch-lightning_version", "callbacks":
{ModelCheckpoint class: {...}}, "state_dict": OrderedDict of tensors}, in torch.save's zip format.

A dev tool (Debian's python3-torch 1.13 on the CPU; the tests never run it): it makes full-size .ckpt files to
measure diffuse's .ckpt loading against the same weights as .safetensors (see bench/ckpt-load.ts). PyTorch
Lightning is not needed: a stand-in class under Lightning's module path is pickled by reference, as the real one
was, so the file holds the same GLOBAL. The .safetensors file is parsed here directly (8-byte header length, JSON
header, raw little-endian data), one tensor at a time.

    /usr/bin/python3 scripts/reference/safetensors_to_ckpt.py IN.safetensors OUT.ckpt
"""
from __future__ import annotations

import collections
import json
import struct
import sys
import types

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def stand_in_model_checkpoint() -> type:
    """A class that pickles as pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint (by name only)."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    cls = type("ModelCheckpoint", (), {"__module__": names[-1]})
    setattr(sys.modules[names[-1]], "ModelCheckpoint", cls)
    return cls


def read_safetensors(path: str) -> collections.OrderedDict:
    out: collections.OrderedDict = collections.OrderedDict()
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        start = 8 + n
        for name, t in header.items():
            if name == "__metadata__":
                continue
            begin, end = t["data_offsets"]
            f.seek(start + begin)
            data = bytearray(f.read(end - begin))
            tensor = torch.frombuffer(data, dtype=DTYPES[t["dtype"]]) if data else torch.empty(0, dtype=DTYPES[t["dtype"]])
            out[name] = tensor.reshape(t["shape"])
    return out


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1:]
    model_checkpoint = stand_in_model_checkpoint()
    checkpoint = {
        "epoch": 6,
        "global_step": 840000,
        "pytorch-lightning_version": "1.4.2",
        "callbacks": {
            model_checkpoint: {
                "monitor": None,
                "best_model_score": torch.tensor(0.25),
                "best_model_path": "",
                "dirpath": "logs/checkpoints",
            }
        },
        "state_dict": read_safetensors(src),
    }
    torch.save(checkpoint, dst)


if __name__ == "__main__":
    main()
