#!/usr/bin/python3
"""Reference outputs at latent sizes that are not multiples of 2^(levels-1), for test/fixtures/odd-sizes/.

The shared reference fixtures were all made at 8x8 latents, where the UNet's upsamplers simply double. At other
sizes diffusers' UNet2DConditionModel upsamples each level to the size of the skip connection it is joined with
next (`forward_upsample_size`); this script produces the reference's numbers there, from a PyTorch model of the
same architecture (scripts/train/tiny_sd, diffusers' module names and semantics, extended to SD2 and SDXL).

A dev tool: Debian's python3-torch and numpy on the CPU, nothing else; the tests never run it.

    /usr/bin/python3 scripts/reference/odd_sizes.py --fixtures ../shared/fixtures/reference --out test/fixtures/odd-sizes

Trust comes first: before writing anything, the torch model must reproduce every UNet golden of the shared
fixtures (sd15-tiny, sd2v-tiny, sdxl-tiny: three timestep cases each), the VAE decode goldens, each family's
txt2img image from its final latents, the whole Euler loop of sdxl-tiny's txt2img golden, the Euler scheduler
traces (epsilon and v-prediction) and the seeded generator's draws, each within --tolerance of the golden's
largest magnitude. Only then are the other sizes computed and written:
  unet-<family>.safetensors: random inputs (fp16-exact, stored as F16) and the UNet's output (F32) per size;
  txt2img-<family>-<width>x<height>.safetensors: a whole text-to-image run (seeded initial latents, Euler, classifier-free
      guidance), the latents after every step and the uint8 image; the recipe is in the file's metadata.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))

from tiny_sd import safetensors_io  # noqa: E402
from tiny_sd.configs import UNetConfig, VaeConfig  # noqa: E402
from tiny_sd.unet import UNet2DConditionModel  # noqa: E402
from tiny_sd.vae import AutoencoderKL  # noqa: E402

FAMILIES = ("sd15-tiny", "sd2v-tiny", "sdxl-tiny")

# (latent height, latent width, batch, timesteps, input seed). The tiny UNets have 3 levels, so 4 divides a size
# that needs no resize: odd sizes in both directions, an even size that 4 does not divide, a small one whose
# lowest level is 2x2 from 5x7, and 65x65 (520x520 pixels, the SD1.5 size from the issue) for sd15-tiny.
UNET_CASES = {
    "sd15-tiny": [(9, 13, 2, [999.0], 101), (5, 7, 2, [1.0, 500.0], 102), (10, 6, 2, [287.5], 103), (65, 65, 1, [500.0], 104)],
    "sd2v-tiny": [(9, 13, 2, [999.0], 201), (5, 7, 2, [1.0, 500.0], 202), (10, 6, 2, [287.5], 203)],
    "sdxl-tiny": [(9, 13, 2, [999.0], 301), (5, 7, 2, [1.0, 500.0], 302), (10, 6, 2, [287.5], 303)],
}

# Whole pipelines: the prompts of the shared txt2img goldens, whose text embeddings (the reference's own) are reused.
PIPELINES = [
    {"family": "sd15-tiny", "height": 72, "width": 104, "steps": 5, "seed": 1234, "cfg_scale": 7.5},
    {"family": "sd2v-tiny", "height": 88, "width": 40, "steps": 4, "seed": 4321, "cfg_scale": 7.5},
    {"family": "sdxl-tiny", "height": 104, "width": 56, "steps": 4, "seed": 5678, "cfg_scale": 5.0},
]


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def load_tensors(path: str, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    tensors, _ = safetensors_io.read(path, names)
    return {k: torch.from_numpy(v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in tensors.items()}


def load_unet(models: str, family: str) -> UNet2DConditionModel:
    unet = UNet2DConditionModel(UNetConfig.from_diffusers(read_json(os.path.join(models, family, "unet", "config.json"))))
    unet.load_state_dict(load_tensors(os.path.join(models, family, "unet", "diffusion_pytorch_model.safetensors")), strict=True)
    return unet.eval()


def load_vae(models: str, family: str) -> tuple[AutoencoderKL, float]:
    c = read_json(os.path.join(models, family, "vae", "config.json"))
    if c.get("shift_factor") is not None or c.get("latents_mean") is not None:
        raise ValueError(f"{family} VAE: shift_factor/latents_mean are not implemented")
    cfg = VaeConfig(block_out_channels=tuple(c["block_out_channels"]), layers_per_block=c["layers_per_block"], latent_channels=c["latent_channels"], norm_num_groups=c["norm_num_groups"], scaling_factor=c["scaling_factor"])
    vae = AutoencoderKL(cfg)
    vae.load_state_dict(load_tensors(os.path.join(models, family, "vae", "diffusion_pytorch_model.safetensors")), strict=True)
    return vae.eval(), c["scaling_factor"]


def rel_max(ours: torch.Tensor, gold: torch.Tensor) -> float:
    """Largest absolute difference relative to the golden's largest magnitude (the fixtures' suggested measure)."""
    if ours.shape != gold.shape:
        raise ValueError(f"shape {tuple(ours.shape)} vs golden {tuple(gold.shape)}")
    return float((ours - gold).abs().max() / gold.abs().max())


class EulerDiscrete:
    """Euler's method on the probability-flow ODE in sigma space (no churn): A1111's "Euler", the reference's
    EulerDiscreteScheduler with the model's own schedule (scaled_linear betas, "leading" spacing, steps_offset)."""

    def __init__(self, config: dict, steps: int):
        if config.get("beta_schedule") != "scaled_linear" or config.get("timestep_spacing", "leading") != "leading":
            raise ValueError("only scaled_linear betas with leading spacing are implemented")
        n = config["num_train_timesteps"]
        betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, n, dtype=torch.float32) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.prediction = config.get("prediction_type", "epsilon")
        # Leading spacing: every (n // steps)-th training step from 0, shifted by steps_offset, highest first.
        ratio = n // steps
        self.timesteps = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.float32) + config.get("steps_offset", 0)
        all_sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).numpy()
        sigmas = np.interp(self.timesteps, np.arange(0, n), all_sigmas)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]])).to(torch.float32)
        self.init_noise_sigma = float((self.sigmas.max() ** 2 + 1) ** 0.5)

    def scale_model_input(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return x / ((self.sigmas[i] ** 2 + 1) ** 0.5)

    def step(self, model_output: torch.Tensor, i: int, x: torch.Tensor) -> torch.Tensor:
        sigma = self.sigmas[i]
        if self.prediction == "epsilon":
            denoised = x - sigma * model_output
        elif self.prediction == "v_prediction":
            denoised = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
        else:
            raise ValueError(f"prediction_type {self.prediction} is not implemented")
        derivative = (x - denoised) / sigma
        return x + derivative * (self.sigmas[i + 1] - sigma)


@torch.no_grad()
def check_unet(fixtures: str, family: str, unet: UNet2DConditionModel) -> float:
    gold = load_tensors(os.path.join(fixtures, "goldens", family, "unet.safetensors"))
    extra = {"text_embeds": gold["added_text_embeds"], "time_ids": gold["added_time_ids"]} if "added_text_embeds" in gold else {}
    worst = 0.0
    for case in ("t999", "t287_5", "t_per_batch"):
        out = unet(gold["sample"], gold[f"{case}/timestep"].to(torch.float32), gold["encoder_hidden_states"], **extra)
        err = rel_max(out, gold[f"{case}/out"])
        print(f"  {family} unet {case}: max abs err / max |golden| = {err:.2e}")
        worst = max(worst, err)
    return worst


@torch.no_grad()
def check_vae(fixtures: str, family: str, vae: AutoencoderKL) -> float:
    gold = load_tensors(os.path.join(fixtures, "goldens", family, "vae.safetensors"))
    worst = 0.0
    for case in ("decode", "decode_6x10"):
        err = rel_max(vae.decode(gold[f"{case}/z"]), gold[f"{case}/out"])
        print(f"  {family} vae {case}: max abs err / max |golden| = {err:.2e}")
        worst = max(worst, err)
    return worst


@torch.no_grad()
def check_decode_tail(fixtures: str, family: str, vae: AutoencoderKL, scaling: float) -> float:
    """The pipeline's last stage: the golden run's final latents, unscaled, decoded and mapped to [0, 1] pixels."""
    gold = load_tensors(os.path.join(fixtures, "goldens", family, "txt2img.safetensors"))
    image = to_image(vae, gold["latents_after_step"][-1], scaling)
    err = rel_max(image, gold["image"])
    pixels = int(((image * 255).round() - gold["image_uint8"].to(torch.float32)).abs().max())
    print(f"  {family} txt2img final latents -> image: max abs err / max |golden| = {err:.2e}, largest uint8 difference {pixels}")
    return err


def to_image(vae: AutoencoderKL, latents: torch.Tensor, scaling: float) -> torch.Tensor:
    """Decoded pixels in [0, 1], NHWC, as the pipeline's output_type="np" gives them."""
    return (vae.decode(latents / scaling) / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def check_euler(fixtures: str, name: str) -> float:
    meta = read_json(os.path.join(fixtures, "goldens", "schedulers", "traces", f"{name}.json"))
    gold = load_tensors(os.path.join(fixtures, "goldens", "schedulers", "traces", f"{name}.safetensors"))
    s = EulerDiscrete(meta["config"], meta["num_inference_steps"])
    errs = [rel_max(torch.from_numpy(s.timesteps.copy()), gold["timesteps"]), rel_max(s.sigmas, gold["sigmas"])]
    x = gold["x_unscaled"] * s.init_noise_sigma
    errs.append(rel_max(x, gold["x_init"]))
    for i in range(len(s.timesteps)):
        errs.append(rel_max(s.scale_model_input(x, i), gold["scaled_model_inputs"][i]))
        x = s.step(gold["model_outputs"][i], i, x)
        errs.append(rel_max(x, gold["prev_samples"][i]))
    print(f"  scheduler trace {name}: max abs err / max |golden| = {max(errs):.2e}")
    return max(errs)


def fp16_exact(t: torch.Tensor) -> torch.Tensor:
    """Rounded to fp16 so that the F16 copy in the fixture is exactly the input the output was computed from."""
    return t.to(torch.float16).to(torch.float32)


@torch.no_grad()
def unet_goldens(unet: UNet2DConditionModel, family: str) -> dict[str, np.ndarray]:
    cfg = unet.cfg
    g = torch.Generator().manual_seed({"sd15-tiny": 11, "sd2v-tiny": 21, "sdxl-tiny": 31}[family])
    context = fp16_exact(torch.randn(2, 77, cfg.cross_attention_dim, generator=g))
    out: dict[str, np.ndarray] = {"encoder_hidden_states": context.to(torch.float16).numpy()}
    text_embeds = None
    if cfg.addition_embed_type == "text_time":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        text_embeds = fp16_exact(torch.randn(2, pooled, generator=g))
        out["text_embeds"] = text_embeds.to(torch.float16).numpy()
    for h, w, batch, timesteps, seed in UNET_CASES[family]:
        name = f"{h}x{w}"
        sample = fp16_exact(torch.randn(batch, cfg.in_channels, h, w, generator=torch.Generator().manual_seed(seed)))
        t = torch.tensor(timesteps, dtype=torch.float32)
        extra = {}
        if text_embeds is not None:
            # What SDXL's pipeline passes for an image of this size: original size, crop (0, 0), target size.
            ids = torch.tensor([[h * 8, w * 8, 0, 0, h * 8, w * 8]] * batch, dtype=torch.float32)
            extra = {"text_embeds": text_embeds[:batch], "time_ids": ids}
            out[f"{name}/time_ids"] = ids.numpy()
        result = unet(sample, t, context[:batch], **extra)
        out[f"{name}/sample"] = sample.to(torch.float16).numpy()
        out[f"{name}/timestep"] = t.numpy()
        out[f"{name}/out"] = result.numpy()
        print(f"  {family} unet {name} (batch {batch}, t {timesteps}): out max |x| {float(result.abs().max()):.3f}")
    return out


@torch.no_grad()
def denoise(unet: UNet2DConditionModel, vae: AutoencoderKL, scaling: float, s: EulerDiscrete, noise: torch.Tensor, context: torch.Tensor, cfg_scale: float, added: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """StableDiffusion(XL)Pipeline's loop: the initial noise times init_noise_sigma, then per timestep one UNet call
    on [negative, positive], classifier-free guidance, a scheduler step; the final latents decoded to pixels."""
    latents = noise * s.init_noise_sigma
    after = []
    for i, t in enumerate(s.timesteps):
        x = s.scale_model_input(torch.cat([latents, latents]), i)
        uncond, cond = unet(x, torch.tensor(float(t)), context, **added).chunk(2)
        latents = s.step(uncond + cfg_scale * (cond - uncond), i, latents)
        after.append(latents)
    return after, to_image(vae, latents, scaling)


def pipeline_inputs(fixtures: str, family: str, height: int, width: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
    """The text conditioning of the shared txt2img golden (the reference's own encoders' output for its prompts);
    for SDXL its pooled embeds, with the time ids of this image size: original size, crop (0, 0), target size."""
    gold = load_tensors(os.path.join(fixtures, "goldens", family, "txt2img.safetensors"))
    added = {}
    if "added_cond/text_embeds" in gold:
        added = {"text_embeds": gold["added_cond/text_embeds"], "time_ids": torch.tensor([[height, width, 0, 0, height, width]] * 2, dtype=torch.float32)}
    return gold["encoder_hidden_states"], added, read_json(os.path.join(fixtures, "goldens", family, "txt2img.json"))


def check_loop(fixtures: str, family: str, unet: UNet2DConditionModel, vae: AutoencoderKL, scaling: float) -> float:
    """The whole loop against a shared golden run made with Euler (sdxl-tiny's own scheduler)."""
    gold = load_tensors(os.path.join(fixtures, "goldens", family, "txt2img.safetensors"))
    context, added, meta = pipeline_inputs(fixtures, family, 64, 64)
    errs = [rel_max(added["time_ids"], gold["added_cond/time_ids"])] if added else []
    if meta["scheduler_class"] != "EulerDiscreteScheduler":
        raise ValueError(f"{family}: the golden run is not Euler")
    call = meta["call_kwargs"]
    s = EulerDiscrete(meta["scheduler_config"], call["num_inference_steps"])
    errs.append(rel_max(torch.from_numpy(s.timesteps.copy()), gold["unet_timesteps"]))
    noise = torch.randn(1, unet.cfg.in_channels, 8, 8, generator=torch.Generator().manual_seed(31))  # "randn([1,4,8,8], seed 31)"
    after, image = denoise(unet, vae, scaling, s, noise, context, call["guidance_scale"], added)
    errs += [rel_max(a, gold["latents_after_step"][i]) for i, a in enumerate(after)]
    errs.append(rel_max(image, gold["image"]))
    pixels = int(((image * 255).round() - gold["image_uint8"].to(torch.float32)).abs().max())
    print(f"  {family} txt2img (Euler, {len(after)} steps, CFG {call['guidance_scale']}): max abs err / max |golden| = {max(errs):.2e}, largest uint8 difference {pixels}")
    return max(errs)


def check_generator(fixtures: str) -> float:
    """Seeds mean torch.Generator().manual_seed(seed) + torch.randn: this torch must draw what the fixtures' did."""
    cases = [(seed, shape) for seed in (0, 42, 1234) for shape in ([1, 4, 8, 8], [1, 4, 64, 64])]
    key = lambda seed, shape: f"randn/seed{seed}/{'x'.join(map(str, shape))}"  # noqa: E731
    gold = load_tensors(os.path.join(fixtures, "goldens", "rng", "torch_randn.safetensors"), {key(*c) for c in cases})
    errs = [float((torch.randn(shape, generator=torch.Generator().manual_seed(seed)) - gold[key(seed, shape)]).abs().max()) for seed, shape in cases]
    print(f"  torch.randn against goldens/rng ({len(errs)} draws): largest difference {max(errs):.1e}")
    return max(errs)


def txt2img(fixtures: str, unet: UNet2DConditionModel, vae: AutoencoderKL, scaling: float, p: dict) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    family = p["family"]
    context, added, golden_meta = pipeline_inputs(fixtures, family, p["height"], p["width"])
    scheduler_config = read_json(os.path.join(fixtures, "models", family, "scheduler", "scheduler_config.json"))
    s = EulerDiscrete(scheduler_config, p["steps"])
    # The pipeline's prepare_latents: randn of the latent shape from a generator seeded with the seed.
    noise = torch.randn(1, unet.cfg.in_channels, p["height"] // 8, p["width"] // 8, generator=torch.Generator().manual_seed(p["seed"]))
    after, image = denoise(unet, vae, scaling, s, noise, context, p["cfg_scale"], added)
    tensors = {
        "initial_latents": noise.numpy(),
        "latents_after_step": torch.stack(after).numpy(),
        "image_uint8": (image * 255).round().to(torch.uint8).numpy(),
    }
    tensors.update({f"added_cond/{k}": v.numpy() for k, v in added.items()})
    call = golden_meta["call_kwargs"]
    meta = {
        "prompt": call["prompt"], "sampler": "Euler",
        "steps": str(p["steps"]), "seed": str(p["seed"]), "cfg_scale": str(p["cfg_scale"]),
        "width": str(p["width"]), "height": str(p["height"]),
        "scheduler_config": json.dumps(scheduler_config, sort_keys=True),
        "timesteps": json.dumps([float(t) for t in s.timesteps]),
        "text_conditioning": f"encoder_hidden_states{' and added_cond/text_embeds' if added else ''} of goldens/{family}/txt2img.safetensors ({golden_meta.get('negative_prompt_note', '')})",
    }
    if call.get("negative_prompt") is not None:
        # Absent for SDXL, whose golden passed none: force_zeros_for_empty_prompt then makes the negative embeddings zeros.
        meta["negative_prompt"] = call["negative_prompt"]
    print(f"  {family} txt2img {p['width']}x{p['height']} (width x height): {p['steps']} Euler steps, seed {p['seed']}, CFG {p['cfg_scale']}, timesteps {[float(t) for t in s.timesteps]}")
    return tensors, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", required=True, help="the shared reference fixtures (fixtures/reference)")
    ap.add_argument("--out", required=True, help="folder to write the goldens to")
    ap.add_argument("--tolerance", type=float, default=1e-5, help="largest error against the shared goldens that trusts the model")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = os.path.join(args.fixtures, "models")

    print(f"torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    print("checking the torch model against the shared goldens:")
    unets = {f: load_unet(models, f) for f in FAMILIES}
    vaes = {p["family"]: load_vae(models, p["family"]) for p in PIPELINES}
    checks = {f"{f}/unet": check_unet(args.fixtures, f, unets[f]) for f in FAMILIES}
    checks.update({f"{f}/vae": check_vae(args.fixtures, f, vae) for f, (vae, _) in vaes.items()})
    checks.update({f"{f}/txt2img-decode": check_decode_tail(args.fixtures, f, vae, scaling) for f, (vae, scaling) in vaes.items()})
    checks["sdxl-tiny/txt2img-euler"] = check_loop(args.fixtures, "sdxl-tiny", unets["sdxl-tiny"], *vaes["sdxl-tiny"])
    checks["rng"] = check_generator(args.fixtures)
    checks.update({f"scheduler/{n}": check_euler(args.fixtures, n) for n in ("euler", "euler_v")})
    failed = {k: v for k, v in checks.items() if not v <= args.tolerance}
    if failed:
        sys.exit(f"the torch model does not reproduce the shared goldens (tolerance {args.tolerance:g}): {failed}; nothing written")

    os.makedirs(args.out, exist_ok=True)
    provenance = {"made_by": "scripts/reference/odd_sizes.py", "torch": torch.__version__, "checks": json.dumps({k: f"{v:.2e}" for k, v in checks.items()})}
    print("writing goldens:")
    for f in FAMILIES:
        safetensors_io.write(os.path.join(args.out, f"unet-{f}.safetensors"), unet_goldens(unets[f], f), provenance)
    for p in PIPELINES:
        vae, scaling = vaes[p["family"]]
        tensors, meta = txt2img(args.fixtures, unets[p["family"]], vae, scaling, p)
        safetensors_io.write(os.path.join(args.out, f"txt2img-{p['family']}-{p['width']}x{p['height']}.safetensors"), tensors, {**provenance, **meta})
    for name in sorted(os.listdir(args.out)):
        print(f"  {name}: {os.path.getsize(os.path.join(args.out, name)):,} bytes")


if __name__ == "__main__":
    main()
