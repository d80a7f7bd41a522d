#!/usr/bin/python3
"""Trains the tiny Stable Diffusion of the shapes world and writes it in both layouts the project loads.

A dev tool: Debian's python3-torch and numpy on the CPU, nothing else. Stages, each timed:
  1. the scenes (scripts/shapes/make-dataset.ts, run through npx tsx unless the data folder already holds them);
  2. a CLIP-format byte-level BPE vocabulary learned from their captions;
  3. the VAE (AutoencoderKL, 4 latent channels, factor 8), for --vae-minutes;
  4. the latents of every scene, and the VAE scaling factor (1 / their standard deviation);
  5. the text encoder and the UNet together from scratch with the DDPM objective, for --unet-minutes;
  6. export: diffusers folder, single file (LDM layout), fp16, and the parity fixture for test/shapes/;
  7. the held-out score table through the project's pipeline (scripts/shapes/eval.ts), and the model card.

    /usr/bin/python3 scripts/train/train_tiny_sd.py --threads 2 --vae-minutes 20 --unet-minutes 93

(The shipped model was made by that command's UNet stage on a VAE kept from an earlier run; see its card.)
scripts/train/probe_words.py shows which kinds of prompt word (colour, shape, position) a trained model listens to.

Learning rates follow the elapsed share of each stage's time budget, so a stage always ends annealed.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_sd import ddpm, export, golden  # noqa: E402
from tiny_sd.bpe import Tokenizer, learn_merges  # noqa: E402
from tiny_sd.clip_text import CLIPTextModel  # noqa: E402
from tiny_sd.configs import TextConfig, UNetConfig, VaeConfig  # noqa: E402
from tiny_sd.data import ShapesDataset  # noqa: E402
from tiny_sd.unet import UNet2DConditionModel  # noqa: E402
from tiny_sd.vae import AutoencoderKL  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The architecture. Sizes are set by the 15 MB budget for both layouts in fp16 (about 3.7 M parameters) and by
# what trains in an hour and a half on two CPU cores. The UNet works on 8x8 latents, where attention is cheap
# enough to have at every level; a third level (2x2) gives it a view of the whole picture.
VAE = VaeConfig(block_out_channels=(16, 32, 48, 48), layers_per_block=1, norm_num_groups=8)
# The text encoder runs on all 77 positions for every sample, so its width costs as much time as the UNet's.
TEXT_HIDDEN = 64
TEXT = dict(hidden_size=TEXT_HIDDEN, intermediate_size=256, num_hidden_layers=3, num_attention_heads=2)
UNET = UNetConfig(
    cross_attention_dim=TEXT_HIDDEN,
    block_out_channels=(64, 64, 64),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1,
    attention_head_dim=4,
    norm_num_groups=16,
    sample_size=8,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(REPO, ".cache", "tiny-shapes-data"), help="scene folder (written by make-dataset.ts if absent)")
    p.add_argument("--scenes", type=int, default=30000, help="training scenes to generate when --data holds none")
    p.add_argument("--out", default=os.path.join(REPO, "models", "tiny-shapes"), help="diffusers folder to write")
    p.add_argument("--single-file", default=os.path.join(REPO, "models", "tiny-shapes.safetensors"), help="single-file checkpoint to write")
    p.add_argument("--golden", default=os.path.join(REPO, "test", "shapes", "fixtures", "tiny-shapes-golden.safetensors"), help="parity fixture to write")
    p.add_argument("--work", default=os.path.join(REPO, ".cache", "tiny-shapes-work"), help="intermediate files (VAE, latents)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-merges", type=int, default=4000)
    p.add_argument("--vae-minutes", type=float, default=20.0)
    p.add_argument("--vae-max-steps", type=int, default=0, help="stop the VAE earlier than its time (0: time only)")
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-5, help="KL term per latent element, against per-pixel L1 + L2")
    p.add_argument("--object-weight", type=float, default=4.0, help="extra reconstruction weight on object pixels")
    p.add_argument("--reuse-vae", action="store_true", help="take the VAE from --work instead of training it")
    p.add_argument("--unet-minutes", type=float, default=93.0)
    p.add_argument("--unet-max-steps", type=int, default=0, help="stop the UNet earlier than its time (0: time only)")
    p.add_argument("--unet-batch", type=int, default=64)
    p.add_argument("--unet-lr", type=float, default=1e-3)
    p.add_argument("--resume-unet", action="store_true", help="continue the UNet and text encoder saved in --work (a warm restart)")
    p.add_argument("--token-init-std", type=float, default=1.0, help="standard deviation of the text encoder's initial token embeddings")
    p.add_argument("--x0-weight-cap", type=float, default=5.0, help="weight each sample's epsilon loss by 1/SNR(t), clamped to [1, this] (1: the plain epsilon loss)")
    p.add_argument("--guidance", type=float, default=3.0, help="the model's recommended cfg scale, written to generation_config.json (the pipeline's default for it)")
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--card-only", action="store_true", help="score the model of the last run again and rewrite its card (reads --work/run.json; trains nothing; with --eval 0 keeps the recorded scores)")
    p.add_argument("--eval", type=int, default=100, help="held-out prompts to score at the end with the project's pipeline (0: skip)")
    return p.parse_args()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lr_at(base: float, step: int, progress: float, warmup: int) -> float:
    """Linear warm-up, then a cosine from the base rate to 5% of it over the stage's time budget."""
    warm = min(1.0, (step + 1) / warmup)
    return base * warm * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class Budget:
    """A stage's stopping rule: its wall-clock minutes, or a step cap for short development runs.

    A gap of more than a minute between two steps (no step takes that long) means the process was paused, say by
    another job's benchmark (SIGSTOP); such gaps are not counted, so a pause does not eat the training budget.
    """

    PAUSE = 60.0

    def __init__(self, minutes: float, max_steps: int):
        self.seconds = minutes * 60.0
        self.max_steps = max_steps
        self.start = self.last = time.monotonic()
        self.paused = 0.0

    def progress(self, step: int) -> float:
        now = time.monotonic()
        if now - self.last > self.PAUSE:
            self.paused += now - self.last
            log(f"paused for {now - self.last:.0f} s; not counted")
        self.last = now
        by_time = self.elapsed() / self.seconds
        return max(by_time, step / self.max_steps) if self.max_steps else by_time

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    def elapsed(self) -> float:
        """Seconds spent in this stage, pauses excluded."""
        return time.monotonic() - self.start - self.paused


class Stages:
    """The wall time of each named stage of a run, logged as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def end(self, name: str, start: float) -> None:
        self.seconds[name] = time.monotonic() - start
        log(f"{name}: {self.seconds[name]:.0f} s")


def start_run(threads: int, seed: int, work: str) -> np.random.Generator:
    """Threads, seeds and the work folder of a training run; the run's numpy generator."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    os.makedirs(work, exist_ok=True)
    return np.random.default_rng(seed)


def generator_digest() -> str:
    """The digest make-dataset.ts records in its manifest, asked from it so the two can never disagree."""
    done = subprocess.run(["npx", "tsx", "scripts/shapes/make-dataset.ts", "--digest"], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def ensure_dataset(args: argparse.Namespace) -> str:
    """Reuses the scenes in --data only if they are what this command would write: same count, seed and generator."""
    manifest = os.path.join(args.data, "dataset.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            m = json.load(f)
        if (m.get("count"), m.get("firstSeed"), m.get("sourceDigest")) == (args.scenes, args.seed, generator_digest()):
            return " ".join(make_dataset_command(args.scenes, args.seed, args.data))
        log(f"{args.data} holds other scenes (count, seed or generator differ): writing them again")
    return write_scenes(args.scenes, args.seed, args.data)


def make_dataset_command(count: int, first_seed: int, folder: str) -> list[str]:
    return ["npx", "tsx", "scripts/shapes/make-dataset.ts", "--count", str(count), "--seed", str(first_seed), "--out", os.path.relpath(folder, REPO)]


def write_scenes(count: int, first_seed: int, folder: str) -> str:
    cmd = make_dataset_command(count, first_seed, folder)
    log("writing scenes: " + " ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return " ".join(cmd)


@torch.no_grad()
def check_vae(vae: AutoencoderKL, args: argparse.Namespace) -> dict:
    """Judges the VAE's reconstructions of 500 fresh scenes (seeds no training scene has) with the same judge as the
    evaluation: the model can draw no better than its decoder, so this bounds every later score."""
    folder = os.path.join(args.work, "vae-check")
    write_scenes(500, 1_000_000 + args.seed, folder)
    scenes = ShapesDataset.load(folder)
    rec = vae.decode(vae.encode(scenes.batch(np.arange(len(scenes))))[0])
    u8 = ((rec.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    u8.tofile(os.path.join(folder, "reconstructions.u8"))
    cmd = ["npx", "tsx", "scripts/shapes/judge-dataset.ts", "--data", folder, "--images", os.path.join(folder, "reconstructions.u8")]
    out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def init_for_scratch(unet: UNet2DConditionModel, text: CLIPTextModel, token_std: float) -> None:
    """Starting points that let a diffusion model train from scratch quickly, as LDM does: every residual branch
    (ResNet conv2, transformer proj_out) and the output conv start at zero, so the network starts as identity-like
    paths. Token embeddings of the text encoder start large enough (token_std) that each word's own identity
    is still visible in its output state: with CLIP's 0.02 the attention mixes swamp it, and words whose meaning
    the UNet does not pick up at once (left, top, ...) stay nearly indistinguishable to it for thousands of steps."""
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith(".conv2") or name.endswith(".proj_out") or name == "conv_out":
                module.weight.zero_()
                module.bias.zero_()
        emb = text.text_model.embeddings
        emb.token_embedding.weight.normal_(0.0, token_std)
        emb.position_embedding.weight.normal_(0.0, 0.01)


def init_vae(vae: AutoencoderKL) -> None:
    """Two starting points that make the VAE learn several times faster: residual branches at zero (the network
    starts shallow and deepens as it learns), and a posterior log-variance of -6, so the sampled latents are not
    drowned in unit noise before the encoder has learned to say anything."""
    with torch.no_grad():
        for name, module in vae.named_modules():
            if name.endswith(".conv2"):
                module.weight.zero_()
                module.bias.zero_()
        vae.quant_conv.bias[vae.cfg.latent_channels:] = -6.0


def object_weight(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Per-pixel loss weights: 1 on the background, 1 + factor on objects. Objects are a few percent of the
    pixels but all of the meaning; unweighted, the VAE first learns backgrounds and smudges for a long time.
    A corner pixel is always background in this world, so anything that differs from it is an object."""
    corner = x[:, :, :1, :1]
    return 1.0 + factor * ((x - corner).abs().sum(dim=1, keepdim=True) > 0.1).float()


def train_vae(args: argparse.Namespace, data: ShapesDataset, rng: np.random.Generator) -> tuple[AutoencoderKL, dict]:
    vae = AutoencoderKL(VAE)
    init_vae(vae)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    budget = Budget(args.vae_minutes, args.vae_max_steps)
    step, recent = 0, []
    while not budget.done(step):
        for group in opt.param_groups:
            group["lr"] = lr_at(args.vae_lr, step, budget.progress(step), warmup=100)
        x = data.batch(rng.integers(0, len(data), args.vae_batch))
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = vae.decode(z)
        w = object_weight(x, args.object_weight)
        recon = ((rec - x).abs() * w).mean() + ((rec - x).pow(2) * w).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = recon + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        recent.append(recon.item())
        step += 1
        if step % 50 == 0:
            log(f"vae step {step}: recon {np.mean(recent[-50:]):.4f} kl {kl.item():.2f} ({budget.elapsed():.0f} s)")
    stats = {"steps": step, "seconds": round(budget.elapsed()), "final_recon": float(np.mean(recent[-50:])) if recent else None}
    return vae, stats


@torch.no_grad()
def encode_all(vae: AutoencoderKL, data: ShapesDataset, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    means, logvars = [], []
    for start in range(0, len(data), batch):
        m, lv = vae.encode(data.batch(np.arange(start, min(start + batch, len(data)))))
        means.append(m.numpy())
        logvars.append(lv.numpy())
    return np.concatenate(means), np.concatenate(logvars)


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)


def train_unet(args: argparse.Namespace, tokenizer: Tokenizer, data: ShapesDataset, means: np.ndarray, logvars: np.ndarray, scale: float, rng: np.random.Generator):
    text = CLIPTextModel(TextConfig(vocab_size=len(tokenizer.vocab), bos_token_id=tokenizer.bos, eos_token_id=tokenizer.eos, pad_token_id=tokenizer.pad, **TEXT))
    unet = UNet2DConditionModel(UNET)
    init_for_scratch(unet, text, args.token_init_std)
    ema_text, ema_unet = copy.deepcopy(text), copy.deepcopy(unet)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=args.unet_lr, betas=(0.9, 0.99), weight_decay=0.01)
    state_path = os.path.join(args.work, "unet-state.pt")
    first = 0
    if args.resume_unet:
        # A warm restart: weights, EMA and optimizer moments carry on; the rate schedule starts again (no warm-up).
        saved = torch.load(state_path)
        for module, key in ((unet, "unet"), (text, "text"), (ema_unet, "ema_unet"), (ema_text, "ema_text")):
            module.load_state_dict(saved[key])
        opt.load_state_dict(saved["opt"])
        first = saved["steps"]
        log(f"resumed from {state_path} after {first} steps")
    ids_all = torch.tensor([tokenizer.encode(c) for c in data.captions], dtype=torch.int64)
    empty = torch.tensor(tokenizer.encode(""), dtype=torch.int64)
    means_t, std_t = torch.from_numpy(means), torch.from_numpy(np.exp(0.5 * logvars))
    ac = ddpm.alphas_cumprod()
    weights = ((1.0 - ac) / ac).clamp(1.0, args.x0_weight_cap)
    budget = Budget(args.unet_minutes, args.unet_max_steps)
    step, recent = 0, []
    while not budget.done(step):
        for group in opt.param_groups:
            group["lr"] = lr_at(args.unet_lr, first + step, budget.progress(step), warmup=300)
        idx = torch.from_numpy(rng.integers(0, len(data), args.unet_batch))
        z0 = (means_t[idx] + std_t[idx] * torch.randn(len(idx), *means.shape[1:])) * scale
        ids = ids_all[idx].clone()
        # Caption dropout: the empty prompt is what classifier-free guidance subtracts at sampling time.
        ids[torch.rand(len(idx)) < args.caption_dropout] = empty
        t = torch.randint(0, ddpm.TRAIN_STEPS, (len(idx),))
        noise = torch.randn_like(z0)
        pred = unet(ddpm.add_noise(z0, noise, t, ac), t, text(ids))
        loss = (weights[t] * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        # EMA with a warm-up, so the early random weights are forgotten quickly.
        decay = min(args.ema, (1 + first + step) / (10 + first + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        recent.append(loss.item())
        step += 1
        if step % 50 == 0:
            log(f"unet step {first + step}: loss {np.mean(recent[-50:]):.4f} ({budget.elapsed():.0f} s)")
        if step % 500 == 0:
            log(f"unet step {first + step}: prompt sensitivity {prompt_sensitivity(ema_unet, ema_text, tokenizer):.3f}")
    torch.save({"unet": unet.state_dict(), "text": text.state_dict(), "ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(), "opt": opt.state_dict(), "steps": first + step}, state_path)
    stats = {"steps": first + step, "seconds": round(budget.elapsed()), "final_loss": float(np.mean(recent[-200:])) if recent else None}
    return ema_unet, ema_text, stats


@torch.no_grad()
def prompt_sensitivity(unet: UNet2DConditionModel, text: CLIPTextModel, tokenizer: Tokenizer) -> float:
    """How much the predicted noise depends on the prompt where only the text can tell (t = 900): the relative
    difference between two prompts that differ in every attribute. It stays near 0 until the UNet starts to
    listen to the text encoder, the slowest thing this training learns; watch it rise."""
    prompts = ["a big red circle on the left, blue background", "a small yellow star at the top, green background"]
    context = text(torch.tensor([tokenizer.encode(p) for p in prompts]))
    x = torch.randn(1, 4, UNET.sample_size, UNET.sample_size, generator=torch.Generator().manual_seed(0)).repeat(2, 1, 1, 1)
    eps = unet(x, torch.tensor([900]), context)
    return float((eps[0] - eps[1]).norm() / (0.5 * (eps[0].norm() + eps[1].norm())))


def params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def rates(r: dict) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in r.items())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line() -> str:
    return "/usr/bin/python3 scripts/train/train_tiny_sd.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def vae_command_of_earlier_run(args: argparse.Namespace) -> str:
    """The command that trained a VAE saved before vae.pt recorded it: the first run in --work/run.json."""
    runs = earlier_runs(args)
    if not runs:
        raise SystemExit(f"{args.work}/vae.pt does not say which command trained it and run.json is gone; train the VAE again (drop --reuse-vae)")
    return runs[0]["command"]


def earlier_runs(args: argparse.Namespace) -> list[dict]:
    """The runs recorded in --work/run.json by the run this one resumes (read before it is overwritten)."""
    path = os.path.join(args.work, "run.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return runs_of(json.load(f))


def runs_of(info: dict) -> list[dict]:
    """The runs behind a run.json; files written before runs were recorded describe their one run at the top level."""
    if "runs" in info:
        return info["runs"]
    return [{"command": info["command"], "stage_seconds": info["stage_seconds"], "total_seconds": info["total_seconds"], "unet_steps": info["unet"]["steps"]}]


KNOWN_LIMITS = os.path.join(REPO, "scripts", "train", "tiny-shapes-known-limits.md")


def recommended_guidance(folder: str) -> float:
    """The cfg scale the model folder recommends (generation_config.json); models without one get the pipeline's 7."""
    path = os.path.join(folder, "generation_config.json")
    if not os.path.exists(path):
        return 7.0
    with open(path) as f:
        return float(json.load(f)["guidance_scale"])


def table_count(table: str) -> int | None:
    """The n column of a score table's first row: how many prompts the recorded scores are over."""
    rows = [line.split("|") for line in table.splitlines() if line.startswith("|")]
    return int(rows[2][2]) if len(rows) > 2 and rows[2][2].strip().isdigit() else None


def run_total(run: dict) -> float:
    """A run's seconds, with those of the VAE stage it took over from an earlier run (--reuse-vae), if any."""
    return run["total_seconds"] + (run["vae_from"]["seconds"] if run.get("vae_from") else 0)


def write_model_card(args: argparse.Namespace, path: str, info: dict) -> None:
    c = info
    runs = runs_of(c)
    # A VAE taken over from an earlier run (--reuse-vae) is part of this model's training time.
    borrowed = runs[0].get("vae_from")
    total = sum(run_total(r) for r in runs)
    if len(runs) == 1:
        made = "```\n" + runs[0]["command"] + "\n```"
        steps = f"{runs[0]['unet_steps']}"
    else:
        made = (f"{len(runs)} runs, one after the other, {total / 60:.1f} min in all; each later one continues the UNet and text\n"
                "encoder from the state the one before saved (a warm restart of the learning-rate cosine):\n"
                "```\n" + "\n".join(r["command"] for r in runs) + "\n```")
        counts = [r["unet_steps"] - (runs[i - 1]["unet_steps"] if i else 0) for i, r in enumerate(runs)]
        steps = " + ".join(map(str, counts)) + f" = {runs[-1]['unet_steps']}"
    if borrowed:
        made += (f"\nThe VAE is the one an earlier run trained in its {borrowed['seconds'] / 60:.1f} min VAE stage (`{borrowed['command']}`);\n"
                 f"this run took it over (`--reuse-vae`) and trained everything else from scratch. With that stage the model took\n"
                 f"{total / 60:.1f} min of training; on a fresh machine one command without `--reuse-vae` does all of it.")
    names = list(runs[0]["stage_seconds"])

    def cell(r: dict, name: str) -> str:
        if name == "vae" and r.get("vae_from"):
            return f"{r['vae_from']['seconds'] / 60:.1f} min (earlier run, reused)"
        return f"{r['stage_seconds'].get(name, 0) / 60:.1f} min"

    stages = "\n".join("| " + " | ".join([name] + [cell(r, name) for r in runs]) + " |" for name in names)
    stage_head = "| stage | wall time |" if len(runs) == 1 else "| stage | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    stage_rule = "|" + " --- |" * (len(runs) + 1)
    stage_total = "| total | " + " | ".join(f"{run_total(r) / 60:.1f} min" for r in runs) + " |"
    known = ""
    if os.path.exists(KNOWN_LIMITS):
        with open(KNOWN_LIMITS) as f:
            known = f.read().strip() + "\n"
    not_run = "(not run: pass --eval N, or run `npm run eval:shapes`)"
    tables = c.get("eval")
    # Runs before the sketch test kept the held-out table as a plain string.
    if isinstance(tables, str):
        tables = {"held_out": tables, "sketch": ""}
    evaluation = (tables or {}).get("held_out") or not_run
    sketch = (tables or {}).get("sketch") or not_run
    scored = table_count(evaluation) or args.eval
    # Settings of the run that made the weights (a --card-only call has its own, default, arguments).
    settings = c.get("settings", {"x0_weight_cap": 1.0, "token_init_std": 0.02})
    guidance = recommended_guidance(args.out)
    weighting = ""
    if settings["x0_weight_cap"] > 1.0:
        weighting = (f", each sample's loss weighted by 1/SNR(t) clamped to [1, {settings['x0_weight_cap']:g}] (the\n"
                     "  error of the predicted clean latent where the noise hides the layout, so the prompt's layout words pull harder)")
    weighting += f"; initial token embeddings of standard deviation {settings['token_init_std']:g}"
    text = f"""# tiny-shapes: a Stable Diffusion 1.x trained from scratch on a world of coloured shapes

## What it is
A toy-sized model with exactly the SD1 architecture: CLIP text encoder (causal mask, quick_gelu, final layer
norm, 77 positions), UNet2DConditionModel (cross-attention transformers with conv proj_in/proj_out and GEGLU,
sinusoidal timesteps), AutoencoderKL (4 latent channels, downsampling factor 8) and a CLIP-format byte-level BPE
tokenizer whose {c['merges']} merges were learned from the training captions. Nothing in it comes from another
model. It runs through the same code as a real SD1.5 checkpoint, so `diffuse` works offline out of the box.

It draws 64x64 pictures of one or two objects (circle, square, triangle, star, cross) in eight colours (red,
orange, yellow, green, blue, purple, white, black), small or big, on the left, right, top, bottom or centre,
on a background of one of the same colours, from prompts such as "a small red circle on the left, blue background".

| component | sizes | parameters |
| --- | --- | --- |
| UNet | channels {list(UNET.block_out_channels)}, {UNET.layers_per_block} ResNet per level, cross-attention at every level, {UNET.attention_head_dim} heads | {c['params']['unet']:,} |
| text encoder | width {TEXT['hidden_size']}, {TEXT['num_hidden_layers']} layers, {TEXT['num_attention_heads']} heads, vocabulary {c['vocab']} | {c['params']['text']:,} |
| VAE | channels {list(VAE.block_out_channels)}, scaling factor {c['scaling_factor']:.5f} | {c['params']['vae']:,} |

Files: `models/tiny-shapes/` (diffusers layout) and `models/tiny-shapes.safetensors` (original single-file
layout; load it with the folder as its config, since its sizes are not SD1.5's), both fp16, {c['bytes'] / 1e6:.1f} MB
together.

## How it was made
{made}
- Scenes: {c['scenes']} written by `scripts/shapes/make-dataset.ts` (`{c['dataset']}`); the held-out colour x shape x
  background combinations of `scripts/shapes/held-out.ts` never appear in them.
- Seed {args.seed}; {args.threads} thread(s) on {c['machine']}; torch {torch.__version__}.
- VAE: {c['vae']['steps']} steps of {args.vae_batch} images; L1 + L2 reconstruction with object pixels weighted
  {1 + args.object_weight:g}x, plus {args.kl_weight:g} x KL; final reconstruction loss {c['vae']['final_recon']:.4f}.
  Its reconstructions of {c['vae_check']['count']} new single-object scenes, read by the judge: {rates(c['vae_check']['rates'])}.
- UNet and text encoder, together from scratch: {steps} steps of {args.unet_batch}; DDPM epsilon
  objective (scaled-linear betas 0.00085-0.012, 1000 steps, uniform timesteps){weighting}; {args.caption_dropout:.0%} caption
  dropout to the empty prompt; AdamW, lr {args.unet_lr:g} with a cosine over the time budget; EMA {args.ema}, and the
  EMA weights are the ones exported; final loss {c['unet']['final_loss']:.4f}.

{stage_head}
{stage_rule}
{stages}
{stage_total}

## Scores on held-out prompts
The judge (`scripts/shapes/judge.ts`) reading pictures of the first {scored} held-out prompts (`scripts/shapes/held-out.ts`),
seeds 0-{scored - 1}, the pipeline's default sampler, 20 steps, at the model's recommended guidance (cfg {guidance:g}, in its
`generation_config.json`, the pipeline's default for it), at SD's usual cfg 7 and without guidance (cfg 1); "all 4 right"
counts background, colour, position and shape:

{evaluation}

## Sketch to image
Rough scribbled blobs (`scripts/shapes/sketch.ts`: a brushed background and a zigzag-filled wobbly blob in the
object's colour, at one of the five positions) with a prompt that names colour, shape and background but not the
position ("a red square, blue background"), cfg {guidance:g} (the model's default), 20 steps, seeds 0-19. "position" means the object came out where
the blob was:

{sketch}

## Limits
{known}- 64x64 pixels only; other sizes leave the world it has seen.
- Only this world: the words above, in phrasings like the training captions. Other prompts give a scene of
  shapes, not what was asked.
- The scores above are for one-object prompts; two-object prompts are in the training data but not scored.
- Learning rates follow wall-clock time, so a rerun on a faster or busier machine trains for a different number
  of steps and gives different (similar) weights.
"""
    with open(path, "w") as f:
        f.write(text)


def run_eval(args: argparse.Namespace) -> dict | None:
    """The held-out and sketch-to-image score tables through the project's own pipeline (none if it cannot run here)."""
    cmd = ["npx", "tsx", "scripts/shapes/eval.ts", args.out, "--count", str(args.eval), "--cfg", "model,7,1", "--sketches", "20"]
    log("evaluating: " + " ".join(shlex.quote(c) for c in cmd))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        log(f"evaluation failed (the model is written all the same):\n{done.stderr[-2000:]}")
        return None
    # eval.ts prints the held-out table, then a line starting "sketch to image" and the sketch table.
    held_out, _, sketch = done.stdout.partition("sketch to image")
    tables = {
        "held_out": "\n".join(line for line in held_out.splitlines() if line.startswith("|")),
        "sketch": "\n".join(line for line in sketch.splitlines() if line.startswith("|")),
    }
    log("held-out scores:\n" + tables["held_out"] + "\nsketch to image:\n" + tables["sketch"])
    return tables


def rewrite_card(args: argparse.Namespace) -> None:
    """Scores the model written by an earlier run again and rewrites its card, without training anything."""
    with open(os.path.join(args.work, "run.json")) as f:
        info = json.load(f)
    info["runs"] = runs_of(info)
    # --eval 0 keeps the recorded score tables: only the text around them is written again.
    if args.eval > 0:
        s = time.monotonic()
        info["eval"] = run_eval(args)
        info["runs"][-1]["stage_seconds"]["evaluation"] = time.monotonic() - s
    write_model_card(args, os.path.join(args.out, "MODEL_CARD.md"), info)
    with open(os.path.join(args.work, "run.json"), "w") as f:
        json.dump(info, f, indent=2)
    log(f"card rewritten: {os.path.join(args.out, 'MODEL_CARD.md')}")


def main() -> None:
    args = parse_args()
    if args.card_only:
        rewrite_card(args)
        return
    rng = start_run(args.threads, args.seed, args.work)
    t0 = time.monotonic()
    stages = Stages()
    stage, seconds = stages.end, stages.seconds

    s = time.monotonic()
    dataset_note = ensure_dataset(args)
    data = ShapesDataset.load(args.data)
    stage("scenes", s)

    s = time.monotonic()
    tokenizer = Tokenizer(learn_merges(data.captions, args.max_merges))
    log(f"tokenizer: {len(tokenizer.merges)} merges, vocabulary {len(tokenizer.vocab)}")
    stage("tokenizer", s)

    s = time.monotonic()
    vae_path = os.path.join(args.work, "vae.pt")
    if args.reuse_vae and os.path.exists(vae_path):
        saved = torch.load(vae_path)
        vae = AutoencoderKL(VAE)
        vae.load_state_dict(saved["state"])
        vae_stats = saved["stats"]
        # A resumed run's VAE is already counted in the run it resumes; any other reused VAE is counted in this one.
        vae_from = None if args.resume_unet else {"command": saved.get("command") or vae_command_of_earlier_run(args), "seconds": vae_stats["seconds"]}
        log(f"VAE reused from {vae_path}")
    else:
        vae, vae_stats = train_vae(args, data, rng)
        vae_from = None
        torch.save({"state": vae.state_dict(), "stats": vae_stats, "command": command_line()}, vae_path)
    vae.eval()
    stage("vae", s)

    s = time.monotonic()
    vae_check = check_vae(vae, args)
    log("VAE round trip, judged on 500 new scenes: " + ", ".join(f"{k} {v:.1%}" for k, v in vae_check["rates"].items()))
    stage("vae check", s)

    s = time.monotonic()
    means, logvars = encode_all(vae, data)
    sample = means + np.exp(0.5 * logvars) * rng.standard_normal(means.shape).astype(np.float32)
    scale = float(1.0 / sample.std())
    vae.cfg = dataclasses.replace(VAE, scaling_factor=round(scale, 5))
    log(f"latents: mean {sample.mean():.3f}, std {sample.std():.3f} -> scaling factor {scale:.5f}")
    stage("latents", s)

    s = time.monotonic()
    unet, text, unet_stats = train_unet(args, tokenizer, data, means, logvars, round(scale, 5), rng)
    stage("unet+text", s)

    s = time.monotonic()
    export.write_diffusers(args.out, unet, vae, text, tokenizer, args.guidance)
    export.write_single_file(args.single_file, unet, vae, text)
    # The fixture is computed from the weights as written (fp16), which is what the project's loader reads.
    export.load_diffusers(args.out, unet, vae, text)
    os.makedirs(os.path.dirname(args.golden), exist_ok=True)
    files = {
        "unet": os.path.join(args.out, "unet", "diffusion_pytorch_model.safetensors"),
        "vae": os.path.join(args.out, "vae", "diffusion_pytorch_model.safetensors"),
        "text_encoder": os.path.join(args.out, "text_encoder", "model.safetensors"),
    }
    golden.write_golden(args.golden, unet.eval(), vae, text.eval(), tokenizer, data.batch(np.array([0])), files)
    stage("export", s)

    s = time.monotonic()
    evaluation = run_eval(args) if args.eval > 0 else None
    stage("evaluation", s)

    weight_files = [args.single_file, *files.values()]
    this_run = {"command": command_line(), "stage_seconds": seconds, "total_seconds": time.monotonic() - t0, "unet_steps": unet_stats["steps"]}
    if vae_from:
        this_run["vae_from"] = vae_from
    info = {
        "merges": len(tokenizer.merges),
        "vocab": len(tokenizer.vocab),
        "params": {"unet": params(unet), "text": params(text), "vae": params(vae)},
        "scaling_factor": scale,
        "bytes": sum(os.path.getsize(f) for f in weight_files),
        # A resumed run's weights come from every run before it, so the card must name them all.
        "runs": (earlier_runs(args) if args.resume_unet else []) + [this_run],
        "scenes": len(data),
        "dataset": dataset_note,
        "machine": f"{cpu_name()} ({os.cpu_count()} cores visible)",
        "vae": vae_stats,
        "vae_check": vae_check,
        "unet": unet_stats,
        "eval": evaluation,
        "settings": {"x0_weight_cap": args.x0_weight_cap, "token_init_std": args.token_init_std},
    }
    write_model_card(args, os.path.join(args.out, "MODEL_CARD.md"), info)
    with open(os.path.join(args.work, "run.json"), "w") as f:
        json.dump(info, f, indent=2)
    log(f"done in {this_run['total_seconds'] / 60:.1f} min; weights {info['bytes'] / 1e6:.2f} MB in {args.out} and {args.single_file}")


if __name__ == "__main__":
    main()
