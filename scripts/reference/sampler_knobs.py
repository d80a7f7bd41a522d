#!/usr/bin/python3
"""Reference runs of the noisy samplers with A1111's sampler knobs, for test/fixtures/sampler-knobs/runs.json.

Each sampler is k-diffusion's loop (sample_euler_ancestral, sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral,
sample_dpmpp_sde with r = 1/2, sample_dpmpp_2m_sde with the midpoint solver, sample_dpmpp_3m_sde), written out
here in float64 from the step formulas of the papers (Karras et al. 2022; Lu et al. 2022; k-diffusion's
get_ancestral_step: sigma_up = min(sigma_to, eta * sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2)),
sigma_down = sqrt(sigma_to^2 - sigma_up^2)), with eta and s_noise other than A1111's default 1; and Euler, Heun
and DPM2 with Karras et al.'s churn (algorithm 2: gamma = min(s_churn / steps, sqrt 2 - 1) for sigma_i within
[s_tmin, s_tmax], sigma_hat = sigma_i (1 + gamma), x += eps s_noise sqrt(sigma_hat^2 - sigma_i^2) with eps drawn
on every step, as k-diffusion's sample_euler, sample_heun and sample_dpm_2 draw it). The noise is
torch's CPU generator, as A1111 draws it (ImageRNG): the initial noise is the seed's first draw, and the sampler's
draws carry on from the same generator, or, with an eta noise seed delta (ENSD), come from a fresh generator
seeded seed + delta (modules/rng.py). The samplers that k-diffusion feeds from a Brownian tree (DPM++ SDE,
DPM++ 2M SDE, DPM++ 3M SDE) take their increments from a Brownian path sampled with those draws: one standard
normal per disjoint interval, in the order the sampler first needs them (for DPM++ SDE, [sigma_mid, sigma_i]
then [sigma_{i+1}, sigma_mid], so the whole step's increment is their sum).

The model is a fixed function of what a UNet sees, eps(u) = 0.8 u + 0.2 sin(k) for the scaled input
u = x / sqrt(sigma^2 + 1), so D(x, sigma) = x - sigma eps(u), the same for a sigma-space (VE) and a VP sampler.
Sigmas: SD's training table (schedule_types.training_sigmas) through k-diffusion's Karras or Exponential
schedule, with the next-to-last dropped where A1111 does (DPM2 a, DPM++ 3M SDE). A VP sampler (diffusers'
DPMSolverMultistep behind "DPM++ 2M SDE") starts from the unit noise itself (init_noise_sigma 1), which in sigma
space is that noise times sqrt(sigma_0^2 + 1).

A dev tool; the tests never run it:

    /usr/bin/python3 scripts/reference/sampler_knobs.py --out test/fixtures/sampler-knobs/runs.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from schedule_types import exponential, karras, training_sigmas  # noqa: E402

N = 32
SEED = 4242
STEPS = 8
K = np.arange(N, dtype=np.float64)


def eps_model(u: np.ndarray) -> np.ndarray:
    return 0.8 * u + 0.2 * np.sin(K)


def denoise(x: np.ndarray, sigma: float) -> np.ndarray:
    return x - sigma * eps_model(x / math.sqrt(sigma * sigma + 1))


class Draws:
    """torch.randn draws of N values from one CPU generator, in order, as float64."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self) -> np.ndarray:
        return torch.randn(N, generator=self.g).double().numpy()


def ancestral(sigma_from: float, sigma_to: float, eta: float) -> tuple[float, float]:
    if not eta:
        return sigma_to, 0.0
    up = min(sigma_to, eta * math.sqrt(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2))
    return math.sqrt(sigma_to**2 - up**2), up


def euler_ancestral(x, sigmas, eta, s_noise, noise):
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        down, up = ancestral(sigmas[i], sigmas[i + 1], eta)
        x = x + (x - den) / sigmas[i] * (down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise() * s_noise * up
    return x


def churned(x, sigmas, i, churn, noise):
    """Algorithm 2's churn before step i: the raised sample and sigma_hat; eps is drawn whatever gamma is."""
    s_churn, s_tmin, s_tmax, s_noise = churn
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
    eps = noise() * s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * math.sqrt(sigma_hat**2 - sigmas[i] ** 2)
    return x, sigma_hat


def euler(x, sigmas, churn, noise):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churned(x, sigmas, i, churn, noise)
        d = (x - denoise(x, sigma_hat)) / sigma_hat
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def heun(x, sigmas, churn, noise):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churned(x, sigmas, i, churn, noise)
        d = (x - denoise(x, sigma_hat)) / sigma_hat
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = (x2 - denoise(x2, sigmas[i + 1])) / sigmas[i + 1]
            x = x + (d + d2) / 2 * dt
    return x


def dpm2(x, sigmas, churn, noise):
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churned(x, sigmas, i, churn, noise)
        d = (x - denoise(x, sigma_hat)) / sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            mid = math.exp(0.5 * (math.log(sigma_hat) + math.log(sigmas[i + 1])))
            x2 = x + d * (mid - sigma_hat)
            d2 = (x2 - denoise(x2, mid)) / mid
            x = x + d2 * (sigmas[i + 1] - sigma_hat)
    return x


def dpm2_ancestral(x, sigmas, eta, s_noise, noise):
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        down, up = ancestral(sigmas[i], sigmas[i + 1], eta)
        d = (x - den) / sigmas[i]
        if down == 0:
            x = x + d * (down - sigmas[i])
        else:
            mid = math.exp(0.5 * (math.log(sigmas[i]) + math.log(down)))
            x2 = x + d * (mid - sigmas[i])
            d2 = (x2 - denoise(x2, mid)) / mid
            x = x + d2 * (down - sigmas[i])
            x = x + noise() * s_noise * up
    return x


def dpmpp_2s_ancestral(x, sigmas, eta, s_noise, noise):
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        down, up = ancestral(sigmas[i], sigmas[i + 1], eta)
        if down == 0:
            x = x + (x - den) / sigmas[i] * (down - sigmas[i])
        else:
            t, t_next = -math.log(sigmas[i]), -math.log(down)
            h = t_next - t
            s = t + h / 2
            x2 = (math.exp(-s) / math.exp(-t)) * x - math.expm1(-h / 2) * den
            den2 = denoise(x2, math.exp(-s))
            x = (math.exp(-t_next) / math.exp(-t)) * x - math.expm1(-h) * den2
        if sigmas[i + 1] > 0:
            x = x + noise() * s_noise * up
    return x


def dpmpp_sde(x, sigmas, eta, s_noise, noise):
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = x + (x - den) / sigmas[i] * (0 - sigmas[i])
            continue
        t, t_next = -math.log(sigmas[i]), -math.log(sigmas[i + 1])
        h = t_next - t
        s = t + h / 2
        s_hi, s_mid, s_lo = sigmas[i], math.exp(-s), sigmas[i + 1]
        # The Brownian path on [s_lo, s_hi]: one normal per interval, the upper one first.
        z1 = noise()
        z2 = noise()
        w_stage1 = z1
        w_step = (math.sqrt(s_hi - s_mid) * z1 + math.sqrt(s_mid - s_lo) * z2) / math.sqrt(s_hi - s_lo)
        down, up = ancestral(s_hi, s_mid, eta)
        s_ = -math.log(down)
        x2 = (math.exp(-s_) / math.exp(-t)) * x - math.expm1(t - s_) * den
        x2 = x2 + w_stage1 * s_noise * up
        den2 = denoise(x2, s_mid)
        down, up = ancestral(s_hi, s_lo, eta)
        t_next_ = -math.log(down)
        x = (math.exp(-t_next_) / math.exp(-t)) * x - math.expm1(t - t_next_) * den2
        x = x + w_step * s_noise * up
    return x


def dpmpp_2m_sde(x, sigmas, eta, s_noise, noise):
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = den
        else:
            h = math.log(sigmas[i]) - math.log(sigmas[i + 1])
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * math.exp(-eta_h) * x - math.expm1(-h - eta_h) * den
            if old is not None:
                r = h_last / h
                x = x + 0.5 * -math.expm1(-h - eta_h) * (1 / r) * (den - old)
            z = noise()
            if eta:
                x = x + z * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise
            h_last = h
        old = den
    return x


def dpmpp_3m_sde(x, sigmas, eta, s_noise, noise):
    d_1, d_2, h_1, h_2 = None, None, None, None
    for i in range(len(sigmas) - 1):
        den = denoise(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = den
        else:
            h = math.log(sigmas[i]) - math.log(sigmas[i + 1])
            h_eta = h * (eta + 1)
            x = math.exp(-h_eta) * x - math.expm1(-h_eta) * den
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (den - d_1) / r0
                d1_1 = (d_1 - d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * (den - d_1) / (h_1 / h)
            if eta:
                x = x + noise() * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise
        d_1, d_2 = den, d_1
        h_1, h_2 = h, h_1
    return x


# The churn runs: sampler, loop, schedule type, discard the next-to-last sigma, s_churn, s_tmin, s_tmax, s_noise.
CHURN_CASES = [
    ("Euler", euler, "Karras", False, 1.0, 0.5, 10.0, 1.003),
    ("Heun", heun, "Karras", False, 0.8, 0.0, 0.0, 1.0),
    ("DPM2", dpm2, "Karras", True, 2.5, 0.2, 5.0, 0.9),
]

# sampler (A1111's label), loop, schedule type, discard the next-to-last sigma, VP sampler, eta, s_noise, ENSD
CASES = [
    ("Euler a", euler_ancestral, "Karras", False, False, 0.5, 0.8, 0),
    ("Euler a", euler_ancestral, "Karras", False, False, 1.0, 1.0, 31337),
    ("DPM2 a", dpm2_ancestral, "Karras", True, False, 0.6, 1.3, 0),
    ("DPM++ 2S a", dpmpp_2s_ancestral, "Karras", False, False, 0.7, 0.9, 0),
    ("DPM++ SDE", dpmpp_sde, "Karras", False, False, 0.6, 0.7, 0),
    ("DPM++ 2M SDE", dpmpp_2m_sde, "Karras", False, True, 0.5, 1.2, 0),
    ("DPM++ 3M SDE", dpmpp_3m_sde, "Exponential", True, False, 0.5, 1.2, 0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    table = training_sigmas()
    sigma_min, sigma_max = table[0].item(), table[-1].item()
    runs = []
    for label, loop, schedule, discard, vp, eta, s_noise, ensd in CASES:
        n = STEPS + (1 if discard else 0)
        make = karras if schedule == "Karras" else exponential
        sigmas = [float(s) for s in make(n, sigma_min, sigma_max).tolist()]
        if discard:
            sigmas = sigmas[:-2] + sigmas[-1:]
        seeded = Draws(SEED)
        xt = seeded()
        noise = Draws(SEED + ensd) if ensd else seeded
        x0 = xt * (math.sqrt(sigmas[0] ** 2 + 1) if vp else sigmas[0])
        x = loop(x0, sigmas, eta, s_noise, noise)
        runs.append(
            {
                "sampler": label,
                "schedule": schedule,
                "steps": STEPS,
                "eta": eta,
                "s_noise": s_noise,
                "ensd": ensd,
                "x": [float(v) for v in x],
            }
        )
    for label, loop, schedule, discard, s_churn, s_tmin, s_tmax, s_noise in CHURN_CASES:
        n = STEPS + (1 if discard else 0)
        sigmas = [float(s) for s in karras(n, sigma_min, sigma_max).tolist()]
        if discard:
            sigmas = sigmas[:-2] + sigmas[-1:]
        seeded = Draws(SEED)
        x0 = seeded() * sigmas[0]
        # A1111's s_tmax 0 means no upper bound.
        churn = (s_churn, s_tmin, s_tmax or math.inf, s_noise)
        x = loop(x0, sigmas, churn, seeded)
        runs.append(
            {
                "sampler": label,
                "schedule": schedule,
                "steps": STEPS,
                "s_churn": s_churn,
                "s_tmin": s_tmin,
                "s_tmax": s_tmax,
                "s_noise": s_noise,
                "ensd": 0,
                "x": [float(v) for v in x],
            }
        )
    with open(args.out, "w") as f:
        json.dump({"n": N, "seed": SEED, "model": "eps(u) = 0.8 u + 0.2 sin(k)", "runs": runs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
