#!/usr/bin/python3
"""Trains the scribble ControlNet of the embedded tiny-shapes model and writes it as a diffusers ControlNet folder.

A dev tool, like train_tiny_sd.py: Debian's python3-torch and numpy on the CPU. Stages, each timed:
  1. the data (scripts/shapes/make-scribble-dataset.ts through npx tsx, unless --data already holds it): scenes,
     a rough pen drawing of each (dark ink on light paper) and the control map the product's scribble
     preprocessing makes of that drawing (src/pipeline/control-maps.ts with module "scribble");
  2. the scenes' latents through the model's frozen VAE;
  3. the ControlNet (diffusers' ControlNetModel: the UNet's encoder half copied from the trained UNet, a small
     conditioning embedding, zero convolutions), with the UNet, text encoder and VAE frozen, DDPM epsilon objective
     on (scene latents, caption, control map), for --minutes;
  4. export: config.json and diffusion_pytorch_model.safetensors (fp16), and the parity fixture for test/models/;
  5. the score table through the project's pipeline (scripts/shapes/eval-scribble.ts), and the model card.

    /usr/bin/python3 scripts/train/train_scribble_controlnet.py --threads 2 --minutes 20

Captions: half the time the scene's own caption (with its position words), half the time one that names colours,
shapes and background only (what a user types beside a drawing), so that the map, not the words, has to say where
the object goes; 10% are dropped to the empty prompt, which classifier-free guidance runs the ControlNet with too.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny_sd import ddpm, safetensors_io  # noqa: E402
from tiny_sd.bpe import Tokenizer  # noqa: E402
from tiny_sd.clip_text import CLIPTextModel  # noqa: E402
from tiny_sd.configs import TextConfig, UNetConfig, VaeConfig  # noqa: E402
from tiny_sd.controlnet import ControlNetModel  # noqa: E402
from tiny_sd.export import half, load_diffusers  # noqa: E402
from tiny_sd.golden import sha256  # noqa: E402
from tiny_sd.unet import UNet2DConditionModel  # noqa: E402
from tiny_sd.vae import AutoencoderKL  # noqa: E402
from train_tiny_sd import Budget, Stages, cpu_name, ema_update, log, lr_at, params, start_run  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN_PROMPTS = ["a yellow star, purple background", ""]
# Scenes the held loss (with and without the ControlNet) is measured on.
HELD = 256


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(REPO, "models", "tiny-shapes"), help="the diffusers folder of the model to control (frozen)")
    p.add_argument("--data", default=os.path.join(REPO, ".cache", "tiny-shapes-scribble-data"), help="training set folder (written by make-scribble-dataset.ts if absent or stale)")
    p.add_argument("--scenes", type=int, default=20000, help="training scenes (scene seeds --seed to --seed + N - 1)")
    p.add_argument("--out", default=os.path.join(REPO, "models", "tiny-shapes-scribble"), help="ControlNet folder to write")
    p.add_argument("--golden", default=os.path.join(REPO, "test", "fixtures", "tiny-shapes-scribble-golden.safetensors"), help="parity fixture to write")
    p.add_argument("--work", default=os.path.join(REPO, ".cache", "tiny-shapes-scribble-work"), help="intermediate files (latents, training state, run record)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--minutes", type=float, default=20.0, help="training time budget (wall clock, pauses not counted)")
    p.add_argument("--max-steps", type=int, default=0, help="stop earlier than the time budget (0: time only)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--embedding", default="16,32,48,64", help="conditioning_embedding_out_channels (4 levels: the map is 8x the latents)")
    p.add_argument("--unplaced", type=float, default=0.5, help="share of captions without position words")
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--x0-weight-cap", type=float, default=5.0, help="weight each sample's epsilon loss by 1/SNR(t) clamped to [1, this], as the model was trained")
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--eval", type=int, default=20, help="drawings to score at the end with the project's pipeline (0: skip)")
    p.add_argument("--resume", action="store_true", help="continue the ControlNet saved in --work by the last run (a warm restart of the learning-rate cosine); the card lists both commands")
    p.add_argument("--card-only", action="store_true", help="score the ControlNet of the last run again and rewrite its card (reads --work/run.json; trains nothing)")
    return p.parse_args()


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def load_model(folder: str) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel, Tokenizer]:
    """The model's UNet, VAE, text encoder (fp16 weights as fp32) and tokenizer, from its diffusers folder."""
    unet = UNet2DConditionModel(UNetConfig.from_diffusers(read_json(os.path.join(folder, "unet", "config.json"))))
    v = read_json(os.path.join(folder, "vae", "config.json"))
    vae = AutoencoderKL(VaeConfig(block_out_channels=tuple(v["block_out_channels"]), layers_per_block=v["layers_per_block"], latent_channels=v["latent_channels"],
                                  norm_num_groups=v["norm_num_groups"], scaling_factor=v["scaling_factor"]))
    t = read_json(os.path.join(folder, "text_encoder", "config.json"))
    text = CLIPTextModel(TextConfig(**{k: t[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
                                                        "layer_norm_eps", "bos_token_id", "eos_token_id", "pad_token_id")}))
    load_diffusers(folder, unet, vae, text)
    for m in (unet, vae, text):
        m.eval().requires_grad_(False)
    return unet, vae, text, Tokenizer.load(os.path.join(folder, "tokenizer"))


def dataset_command(args: argparse.Namespace) -> list[str]:
    return ["npx", "tsx", "scripts/shapes/make-scribble-dataset.ts", "--count", str(args.scenes), "--seed", str(args.seed), "--out", os.path.relpath(args.data, REPO)]


def ensure_dataset(args: argparse.Namespace) -> str:
    """Reuses --data only if it is what this command would write: same count, seed and generator sources."""
    cmd = dataset_command(args)
    manifest = os.path.join(args.data, "dataset.json")
    if os.path.exists(manifest):
        m = read_json(manifest)
        digest = subprocess.run(["npx", "tsx", "scripts/shapes/make-scribble-dataset.ts", "--digest"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        if (m.get("count"), m.get("firstSeed"), m.get("sourceDigest")) == (args.scenes, args.seed, digest):
            return " ".join(cmd)
        log(f"{args.data} holds other data (count, seed or generator differ): writing it again")
    log("writing the training set: " + " ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return " ".join(cmd)


class ScribbleData:
    """images.u8 (scenes), controls.u8 (one-channel maps) and captions.jsonl, as make-scribble-dataset.ts writes them."""

    def __init__(self, folder: str):
        m = read_json(os.path.join(folder, "dataset.json"))
        n, h, w = m["count"], m["height"], m["width"]
        self.images = np.memmap(os.path.join(folder, m["images"]), dtype=np.uint8, mode="r", shape=(n, h, w, 3))
        self.controls = np.memmap(os.path.join(folder, m["controls"]), dtype=np.uint8, mode="r", shape=(n, h, w))
        with open(os.path.join(folder, m["captions"])) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if len(rows) != n:
            raise ValueError(f"{folder}: {len(rows)} captions for {n} scenes; write the data again")
        self.captions = [r["caption"] for r in rows]
        self.unplaced = [r["unplaced"] for r in rows]

    def __len__(self) -> int:
        return len(self.captions)

    def scenes(self, index: np.ndarray) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1], the VAE's range."""
        return torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def maps(self, index: np.ndarray) -> torch.Tensor:
        """The control maps as the pipeline feeds them: [B, 3, H, W] in [0, 1], the one channel in all three."""
        c = torch.from_numpy(np.ascontiguousarray(self.controls[index])).float() / 255.0
        return c[:, None].expand(-1, 3, -1, -1).contiguous()


@torch.no_grad()
def encode_all(vae: AutoencoderKL, data: ScribbleData) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for s in range(0, len(data), 256):
        mean, logvar = vae.encode(data.scenes(np.arange(s, min(s + 256, len(data)))))
        means.append(mean)
        stds.append(torch.exp(0.5 * logvar))
    return torch.cat(means), torch.cat(stds)


def train(args: argparse.Namespace, unet: UNet2DConditionModel, text: CLIPTextModel, tokenizer: Tokenizer, data: ScribbleData, means: torch.Tensor, stds: torch.Tensor,
          scale: float, rng: np.random.Generator) -> tuple[ControlNetModel, dict]:
    embedding = tuple(int(v) for v in args.embedding.split(","))
    net = ControlNetModel.from_unet(unet, embedding)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    state_path = os.path.join(args.work, "controlnet.pt")
    first = 0
    if args.resume:
        saved = torch.load(state_path)
        net.load_state_dict(saved["net"])
        ema.load_state_dict(saved["ema"])
        opt.load_state_dict(saved["opt"])
        first = saved["steps"]
        log(f"resumed from {state_path} after {first} steps")
    ids_scene = torch.tensor([tokenizer.encode(c) for c in data.captions], dtype=torch.int64)
    ids_unplaced = torch.tensor([tokenizer.encode(c) for c in data.unplaced], dtype=torch.int64)
    empty = torch.tensor(tokenizer.encode(""), dtype=torch.int64)
    ac = ddpm.alphas_cumprod()
    weights = ((1.0 - ac) / ac).clamp(1.0, args.x0_weight_cap)
    budget = Budget(args.minutes, args.max_steps)
    step, recent = 0, []
    while not budget.done(step):
        for group in opt.param_groups:
            group["lr"] = lr_at(args.lr, first + step, budget.progress(step), warmup=100)
        idx = rng.integers(0, len(data), args.batch)
        ti = torch.from_numpy(idx)
        z0 = (means[ti] + stds[ti] * torch.randn_like(means[ti])) * scale
        ids = torch.where((torch.rand(len(idx)) < args.unplaced)[:, None], ids_unplaced[ti], ids_scene[ti])
        ids[torch.rand(len(idx)) < args.caption_dropout] = empty
        with torch.no_grad():
            context = text(ids)
        t = torch.randint(0, ddpm.TRAIN_STEPS, (len(idx),))
        noise = torch.randn_like(z0)
        noisy = ddpm.add_noise(z0, noise, t, ac)
        down, mid = net(noisy, t, context, data.maps(idx))
        pred = unet(noisy, t, context, down_residuals=down, mid_residual=mid)
        loss = (weights[t] * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema_update(ema, net, min(args.ema, (1 + first + step) / (10 + first + step)))
        recent.append(loss.item())
        step += 1
        if step % 50 == 0:
            log(f"step {first + step}: loss {np.mean(recent[-50:]):.4f} ({budget.elapsed():.0f} s)")
    torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "steps": first + step}, state_path)
    return ema, {"steps": first + step, "seconds": round(budget.elapsed()), "final_loss": float(np.mean(recent[-200:])) if recent else None}


@torch.no_grad()
def baseline_loss(unet: UNet2DConditionModel, text: CLIPTextModel, tokenizer: Tokenizer, data: ScribbleData, means: torch.Tensor, stds: torch.Tensor, scale: float,
                  net: ControlNetModel | None, n: int = HELD) -> float:
    """The epsilon loss on the first n scenes with unplaced captions and fixed noise: with the ControlNet
    it must be lower than without, since the map tells the UNet where the object is and the words do not."""
    g = torch.Generator().manual_seed(7)
    idx = np.arange(min(n, len(data)))
    ti = torch.from_numpy(idx)
    z0 = (means[ti] + stds[ti] * torch.randn(means[ti].shape, generator=g)) * scale
    context = text(torch.tensor([tokenizer.encode(c) for c in np.array(data.unplaced)[idx]], dtype=torch.int64))
    t = torch.randint(0, ddpm.TRAIN_STEPS, (len(idx),), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    ac = ddpm.alphas_cumprod()
    noisy = ddpm.add_noise(z0, noise, t, ac)
    down, mid = net(noisy, t, context, data.maps(idx)) if net is not None else (None, None)
    pred = unet(noisy, t, context, down_residuals=down, mid_residual=mid)
    return float((pred - noise).pow(2).mean())


def export(folder: str, net: ControlNetModel) -> str:
    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    safetensors_io.write(weights, half(net), {"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(net.to_diffusers(), f, indent=2)
        f.write("\n")
    # What the project's loader will see: the fp16 weights, as fp32.
    tensors, _ = safetensors_io.read(weights)
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}, strict=True)
    return weights


@torch.no_grad()
def write_golden(path: str, net: ControlNetModel, text: CLIPTextModel, tokenizer: Tokenizer, cond: torch.Tensor, weights_file: str) -> None:
    """Inputs and this torch code's outputs for one control map: the conditioning embedding (the project's hint
    graph) and every residual for a batch of two (a prompt and the empty one) at one timestep."""
    g = torch.Generator().manual_seed(4321)
    ids = torch.tensor([tokenizer.encode(p) for p in GOLDEN_PROMPTS], dtype=torch.int64)
    context = text(ids)
    sample = torch.randn(2, net.cfg.in_channels, 8, 8, generator=g)
    timestep = torch.tensor([600.0])
    down, mid = net(sample, timestep, context, cond.expand(2, -1, -1, -1))
    tensors = {
        "controlnet_cond": cond,
        "hint": net.controlnet_cond_embedding(cond),
        "sample": sample,
        "timestep": timestep,
        "encoder_hidden_states": context,
        **{f"down_block_res_samples.{i}": d for i, d in enumerate(down)},
        "mid_block_res_sample": mid,
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    meta = {"prompts": "\n".join(GOLDEN_PROMPTS), "sha256:controlnet": sha256(weights_file)}
    safetensors_io.write(path, {k: np.ascontiguousarray(v.numpy()) for k, v in tensors.items()}, meta)


def run_eval(args: argparse.Namespace) -> str | None:
    """The score table through the project's own pipeline (none if it cannot run here)."""
    cmd = ["npx", "tsx", "scripts/shapes/eval-scribble.ts", "--controlnet", os.path.relpath(args.out, REPO), "--model", os.path.relpath(args.model, REPO), "--count", str(args.eval)]
    log("evaluating: " + " ".join(shlex.quote(c) for c in cmd))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        log(f"evaluation failed (the ControlNet is written all the same):\n{done.stderr[-2000:]}")
        return None
    table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    log("scores:\n" + table)
    return table


def command_line() -> str:
    return "/usr/bin/python3 scripts/train/train_scribble_controlnet.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


SETTINGS = ("seed", "threads", "batch", "lr", "unplaced", "caption_dropout", "x0_weight_cap", "ema")


def write_card(args: argparse.Namespace, info: dict) -> None:
    c = info
    # The settings of the run that trained the weights (a --card-only call has its own, default, arguments).
    args = argparse.Namespace(**{**vars(args), **c.get("settings", {})})
    stages = "\n".join(f"| {name} | {s / 60:.1f} min |" for name, s in c["stage_seconds"].items())
    table = c.get("eval") or "(not run: pass --eval N, or run the command below)"
    text = f"""# tiny-shapes-scribble: a scribble ControlNet for the tiny-shapes model

## What it is
diffusers' ControlNetModel for `models/tiny-shapes/`: a copy of the model's UNet encoder half (time embedding,
conv_in, three down levels, mid block) trained further, a conditioning embedding with channels
{list(c['embedding'])} (the 64x64 map down to the 8x8 latents) and zero-initialised 1x1 convolutions on the
{c['residuals']} skip connections and the mid block; {c['params']:,} parameters, fp16,
{c['bytes'] / 1e6:.2f} MB (`config.json` + `diffusion_pytorch_model.safetensors`).

It takes the map the product's scribble preprocessor (`--control-type scribble`, module "scribble") makes of a
user's drawing: dark strokes on light paper become white strokes on black. Draw the outline of a shape where
you want it; the prompt says its colour, its shape and the background:
```
diffuse generate "a red star, blue background" --control drawing.png --control-type scribble --control-model tiny-shapes-scribble
```

## How it was made
```
{c['command']}
```
- Data: {c['scenes']} scenes of the shapes world (scene seeds {args.seed} to {args.seed + c['scenes'] - 1}), each with a rough pen drawing of
  its objects (`scripts/shapes/scribble-sketch.ts`: wobbly outlines in dark ink on light paper, corners that
  overshoot or stop short, loops left open, sometimes traced twice or hatched) turned into its control map by the
  pipeline's own preprocessing (`src/pipeline/control-maps.ts`, module scribble, ink threshold 128), written by
  `{c['dataset']}`.
- Frozen: the model's UNet, text encoder and VAE. Trained: the ControlNet, starting from the UNet's encoder half.
- Captions: {args.unplaced:.0%} without position words (colours, shapes, background: what a user types beside a
  drawing), the others the scene's own caption; {args.caption_dropout:.0%} dropped to the empty prompt.
- {c['steps']} steps of {args.batch}; DDPM epsilon objective, each sample weighted by 1/SNR(t) clamped to [1, {args.x0_weight_cap:g}] (as the
  model was trained); AdamW, lr {args.lr:g} with a cosine over the run's time budget (--minutes); EMA {args.ema}, whose weights are
  exported; final training loss {c['final_loss']:.4f}. On {HELD} training scenes with unplaced captions and fixed noise,
  the model's loss is {c['loss_without']:.4f} without the ControlNet and {c['loss_with']:.4f} with it.
- Seed {args.seed}; {args.threads} thread(s) on {c['machine']}; torch {torch.__version__}.

| stage | wall time |
| --- | --- |
{stages}

## Scores
`npx tsx scripts/shapes/eval-scribble.ts --count {args.eval}`: {args.eval} drawings made like the training ones but from seeds no training
drawing uses (`scribbleCase` in `scripts/shapes/scribble-sketch.ts`), shapes and positions in turn, each with a prompt naming
colour, shape and background but not the position ("a red square, blue background"); the model's default cfg and 20
steps, seed = the drawing's index; the judge (`scripts/shapes/judge.ts`) reads the picture. "kept" counts the
picture whose object has the drawn shape where it was drawn. Rows: the ControlNet from noise (text to image guided by
the drawing); image to image from the drawing at strength 0.8 with and without the ControlNet.

{table}

## Limits
- Only for `models/tiny-shapes/` (64x64 pictures, its words); the preprocessor's default ink threshold (128).
- One or two shapes drawn as outlines (filled-in or hatched drawings work too); the drawing's size is followed
  roughly (small or big), not to the pixel.
"""
    with open(os.path.join(args.out, "MODEL_CARD.md"), "w") as f:
        f.write(text)


def main() -> None:
    args = parse_args()
    run_path = os.path.join(args.work, "run.json")
    if args.card_only:
        info = read_json(run_path)
        # Runs recorded before settings were: the command line of this call must repeat the run's flags.
        info.setdefault("settings", {k: getattr(args, k) for k in SETTINGS})
        if args.eval > 0:
            s = time.monotonic()
            info["eval"] = run_eval(args)
            info["stage_seconds"]["evaluation"] = time.monotonic() - s
        write_card(args, info)
        with open(run_path, "w") as f:
            json.dump(info, f, indent=2)
        return
    rng = start_run(args.threads, args.seed, args.work)
    t0 = time.monotonic()
    stages = Stages()
    stage, seconds = stages.end, stages.seconds

    s = time.monotonic()
    dataset = ensure_dataset(args)
    data = ScribbleData(args.data)
    unet, vae, text, tokenizer = load_model(args.model)
    stage("data", s)

    s = time.monotonic()
    # The latents depend on the data and the VAE only: kept in --work for the next run on the same pair (--resume).
    key = [read_json(os.path.join(args.data, "dataset.json"))["sourceDigest"], len(data), args.seed, sha256(os.path.join(args.model, "vae", "diffusion_pytorch_model.safetensors"))]
    latents_path = os.path.join(args.work, "latents.pt")
    cached = torch.load(latents_path) if os.path.exists(latents_path) else None
    if cached is not None and cached["key"] == key:
        means, stds = cached["means"], cached["stds"]
        log(f"latents reused from {latents_path}")
    else:
        means, stds = encode_all(vae, data)
        torch.save({"key": key, "means": means, "stds": stds}, latents_path)
    scale = vae.cfg.scaling_factor
    stage("latents", s)

    s = time.monotonic()
    net, stats = train(args, unet, text, tokenizer, data, means, stds, scale, rng)
    stage("controlnet", s)

    s = time.monotonic()
    weights = export(args.out, net)
    net.eval()
    write_golden(args.golden, net, text, tokenizer, data.maps(np.array([0]))[:1], weights)
    loss_without = baseline_loss(unet, text, tokenizer, data, means, stds, scale, None)
    loss_with = baseline_loss(unet, text, tokenizer, data, means, stds, scale, net)
    log(f"held loss on {HELD} scenes, unplaced captions: {loss_without:.4f} without the ControlNet, {loss_with:.4f} with it")
    stage("export", s)

    earlier = read_json(run_path) if args.resume else None
    info = {
        "command": (earlier["command"] + "\n" if earlier else "") + command_line(),
        "dataset": dataset,
        "scenes": len(data),
        "embedding": list(net.embedding_channels),
        "residuals": len(net.controlnet_down_blocks),
        "params": params(net),
        "bytes": os.path.getsize(weights) + os.path.getsize(os.path.join(args.out, "config.json")),
        "machine": f"{cpu_name()} ({os.cpu_count()} cores visible)",
        "steps": stats["steps"],
        "final_loss": stats["final_loss"],
        "loss_without": loss_without,
        "loss_with": loss_with,
        "settings": {k: getattr(args, k) for k in SETTINGS},
    }
    s = time.monotonic()
    info["eval"] = run_eval(args) if args.eval > 0 else None
    stage("evaluation", s)
    info["stage_seconds"] = seconds
    if earlier:
        # A resumed run's ControlNet is the work of both runs: the card shows the stages of each.
        info["stage_seconds"] = {**{f"{k} (run 1)": v for k, v in earlier["stage_seconds"].items() if k != "evaluation"}, **{f"{k} (run 2)": v for k, v in seconds.items()}}
    info["total_seconds"] = time.monotonic() - t0
    write_card(args, info)
    with open(run_path, "w") as f:
        json.dump(info, f, indent=2)
    log(f"done in {info['total_seconds'] / 60:.1f} min; {info['bytes'] / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
