"""The training set written by scripts/shapes/make-dataset.ts: raw uint8 images plus captions as JSON lines."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ShapesDataset:
    images: np.ndarray  # [N, H, W, 3] uint8 (memory-mapped)
    captions: list[str]

    @staticmethod
    def load(folder: str) -> "ShapesDataset":
        with open(os.path.join(folder, "dataset.json")) as f:
            m = json.load(f)
        images = np.memmap(os.path.join(folder, m["images"]), dtype=np.uint8, mode="r", shape=(m["count"], m["height"], m["width"], m["channels"]))
        with open(os.path.join(folder, m["captions"])) as f:
            captions = [json.loads(line)["caption"] for line in f if line.strip()]
        if len(captions) != m["count"]:
            raise ValueError(f"{folder}: {len(captions)} captions for {m['count']} images; rewrite the dataset")
        return ShapesDataset(images, captions)

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, index: np.ndarray) -> torch.Tensor:
        """Images as [B, 3, H, W] floats in [-1, 1], the VAE's range."""
        x = torch.from_numpy(np.ascontiguousarray(self.images[index]))
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
