"""nn.Linear with the same parameters and names, computed as a 1x1 convolution.

Debian's torch links the generic reference BLAS, on which a Linear runs at about 2 GFLOP/s; the oneDNN
convolution path reaches 20-30 GFLOP/s on the same core. Same weights, same numbers, ten times faster training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = F.conv2d(x.reshape(-1, self.in_features, 1, 1), self.weight[:, :, None, None], self.bias)
        return y.reshape(*lead, self.out_features)
