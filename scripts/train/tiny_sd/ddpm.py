"""The DDPM forward process of SD1: scaled-linear betas from 0.00085 to 0.012 over 1000 steps."""
from __future__ import annotations

import torch

TRAIN_STEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


def alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_STEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, ac: torch.Tensor) -> torch.Tensor:
    a = ac[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise


def scheduler_config() -> dict:
    """SD1.5's scheduler_config.json values (PNDM, leading spacing, offset 1), so samplers inherit its schedule."""
    return {
        "_class_name": "PNDMScheduler",
        "_diffusers_version": "0.30.0",
        "beta_end": BETA_END,
        "beta_schedule": "scaled_linear",
        "beta_start": BETA_START,
        "clip_sample": False,
        "num_train_timesteps": TRAIN_STEPS,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "trained_betas": None,
    }
