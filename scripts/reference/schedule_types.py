#!/usr/bin/python3
"""Reference sigma sequences of A1111's schedule types, for test/fixtures/schedule-types/sigmas.json.

Each schedule is computed the way k-diffusion (sampling.get_sigmas_karras, get_sigmas_exponential,
get_sigmas_polyexponential; external.DiscreteSchedule.get_sigmas, sigma_to_t, t_to_sigma) and A1111
(modules/sd_schedulers.py: sgm_uniform, kl_optimal, align your steps, simple, normal, ddim, beta) compute it:
torch float32 tensors where they use tensors, Python floats and numpy where they do, with A1111's arguments
(sigma_min and sigma_max the model's smallest and largest training sigma, rho 7 for Karras and 1 for
Polyexponential, Beta's alpha = beta = 0.6). The formulas are written out here from the papers' and those
projects' definitions, not imported, so the script needs only Debian's python3-torch, numpy and mpmath (scipy's
beta.ppf is replaced by an mpmath root of the regularized incomplete beta function, exact to far below float32).

The training sigmas are Stable Diffusion's as the LDM code builds them (sqrt(beta) linear from 0.00085 to 0.012
over 1000 steps in float64, cumulative product of 1 - beta, stored as float32), and are written to the fixture so
the test feeds the same table to our code.

A dev tool; the tests never run it:

    /usr/bin/python3 scripts/reference/schedule_types.py --out test/fixtures/schedule-types/sigmas.json
"""
from __future__ import annotations

import argparse
import json
import math

import mpmath
import numpy as np
import torch

STEPS = [1, 4, 20, 50]


def training_sigmas() -> torch.Tensor:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.tensor(np.cumprod(1.0 - betas.numpy(), axis=0), dtype=torch.float32)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


class Discrete:
    """The model's discrete schedule: training sigmas and the maps between sigma and fractional timestep."""

    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas
        self.log_sigmas = sigmas.log()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]).exp()

    def uniform(self, n: int) -> torch.Tensor:
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return with_zero(self.t_to_sigma(t))


def with_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def karras(n, sigma_min, sigma_max, rho=7.0):
    ramp = torch.linspace(0, 1, n)
    lo = sigma_min ** (1 / rho)
    hi = sigma_max ** (1 / rho)
    return with_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(n, sigma_min, sigma_max):
    return with_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n, sigma_min, sigma_max, rho=1.0):
    ramp = torch.linspace(1, 0, n) ** rho
    return with_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def timestep_spread(n, sigma_min, sigma_max, model: Discrete, sgm: bool):
    start = model.sigma_to_t(torch.tensor(sigma_max))
    end = model.sigma_to_t(torch.tensor(sigma_min))
    ts = torch.linspace(start, end, n + 1)[:-1] if sgm else torch.linspace(start, end, n)
    return torch.FloatTensor([model.t_to_sigma(t) for t in ts] + [0.0])


def kl_optimal(n, sigma_min, sigma_max):
    a_min = torch.arctan(torch.tensor(sigma_min))
    a_max = torch.arctan(torch.tensor(sigma_max))
    i = torch.arange(n + 1)
    return torch.tan(i / n * a_min + (1.0 - i / n) * a_max)


AYS = {
    "sd15": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def align_your_steps(n, table):
    if n == len(table):
        return torch.FloatTensor(list(table) + [0.0])
    xs = np.linspace(0, 1, len(table))
    ys = np.log(table[::-1])
    new = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1].copy()
    return torch.FloatTensor(np.append(new, [0.0]))


def simple(n, model: Discrete):
    stride = len(model.sigmas) / n
    return torch.FloatTensor([float(model.sigmas[-(1 + int(x * stride))]) for x in range(n)] + [0.0])


def ddim(n, model: Discrete):
    stride = max(len(model.sigmas) // n, 1)
    picked = [float(model.sigmas[x]) for x in range(1, len(model.sigmas), stride)]
    return torch.FloatTensor(picked[::-1] + [0.0])


def beta_ppf(q: float, a: float, b: float) -> float:
    if q <= 0:
        return 0.0
    if q >= 1:
        return 1.0
    mpmath.mp.dps = 40
    f = lambda x: mpmath.betainc(a, b, 0, x, regularized=True) - q
    return float(mpmath.findroot(f, (mpmath.mpf("1e-30"), mpmath.mpf(1) - mpmath.mpf("1e-30")), solver="anderson"))


def beta(n, sigma_min, sigma_max, alpha=0.6, beta_=0.6):
    qs = 1 - np.linspace(0, 1, n)
    xs = [beta_ppf(float(q), alpha, beta_) for q in qs]
    return torch.FloatTensor([sigma_min + x * (sigma_max - sigma_min) for x in xs] + [0.0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    table = training_sigmas()
    model = Discrete(table)
    sigma_min, sigma_max = table[0].item(), table[-1].item()
    makers = {
        "uniform": lambda n: model.uniform(n),
        "karras": lambda n: karras(n, sigma_min, sigma_max),
        "exponential": lambda n: exponential(n, sigma_min, sigma_max),
        "polyexponential": lambda n: polyexponential(n, sigma_min, sigma_max),
        "sgm_uniform": lambda n: timestep_spread(n, sigma_min, sigma_max, model, sgm=True),
        "kl_optimal": lambda n: kl_optimal(n, sigma_min, sigma_max),
        "align_your_steps": lambda n: align_your_steps(n, AYS["sd15"]),
        "align_your_steps_sdxl": lambda n: align_your_steps(n, AYS["sdxl"]),
        "simple": lambda n: simple(n, model),
        "normal": lambda n: timestep_spread(n, sigma_min, sigma_max, model, sgm=False),
        "ddim": lambda n: ddim(n, model),
        "beta": lambda n: beta(n, sigma_min, sigma_max),
    }
    steps = STEPS + [7, 11]  # 7: DDIM's stride gives one step more; 11: Align Your Steps' own table length
    out = {
        "about": "A1111 schedule-type sigmas (k-diffusion / modules/sd_schedulers.py formulas) on SD's training sigmas; made by scripts/reference/schedule_types.py",
        "torch": torch.__version__,
        "training_sigmas": [float(v) for v in table],
        "schedules": {name: {str(n): [float(v) for v in make(n).float()] for n in steps} for name, make in makers.items()},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
