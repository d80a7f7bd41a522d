#!/usr/bin/python3
"""Tiny T2I-Adapters and their reference outputs, for test/fixtures/t2i-adapter/.

The shared fixtures hold no T2I-Adapter, so this script makes two, with random weights, from the project's own
plain-torch model of diffusers' T2IAdapter (scripts/train/tiny_sd/t2i_adapter.py): one FullAdapter for sd15-tiny
(RGB input, channels 16/32/32, the UNet's three levels) and one FullAdapterXL for sdxl-tiny (one-channel input,
channels 16/32/32/32: three down blocks and the mid block). It writes each in the layouts users have:

  sd15-tiny-adapter.pth.safetensors     TencentARC's original names (conv_in, body.K.block1, body.K.in_conv, ...)
  sd15-tiny-adapter/                    a diffusers folder (config.json + diffusion_pytorch_model.safetensors)
  sdxl-tiny-adapter/                    the same for the XL adapter (published SDXL adapters come this way)

txt2img-sd15-tiny-104x72.safetensors: a whole text-to-image run with the SD1 adapter (control-104x72.png, weight 0.8,
a guidance window), the latents after every step and the image; the recipe in its metadata.

And goldens.safetensors: per adapter a control image and its feature maps, then the tiny UNet of the family on fixed
inputs without the adapter (`unet/out_plain`) and with its features times a conditioning scale added inside the
down blocks as diffusers adds down_intrablock_additional_residuals (`unet/out_adapter`; tiny_sd/unet.py
encoder_pass says where each one enters). Weights are stored as fp16 and the references computed from the
fp16-rounded values; inputs are fp16-exact.

A dev tool: Debian's python3-torch and numpy on the CPU, nothing else; the tests never run it.

    /usr/bin/python3 scripts/reference/t2i_adapter.py --fixtures ../shared/fixtures/reference --out test/fixtures/t2i-adapter

Trust comes first: the torch UNets must reproduce the shared UNet goldens of sd15-tiny and sdxl-tiny within
--tolerance before anything is written (odd_sizes.py's check).
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

from odd_sizes import EulerDiscrete, check_generator, check_unet, fp16_exact, load_unet, load_vae, pipeline_inputs, read_json, to_image  # noqa: E402
from tiny_sd import safetensors_io  # noqa: E402
from tiny_sd.t2i_adapter import T2IAdapter, tencentarc_state_dict  # noqa: E402

RES_BLOCKS = 2
# family -> (adapter config as diffusers' T2IAdapter takes it, control image height/width, latent batch, seed)
ADAPTERS = {
    # 72x104 px: features at 9x13, 5x7 (ceil), 3x4 (ceil): the average pools' ceil mode is exercised.
    "sd15-tiny": ({"in_channels": 3, "channels": [16, 32, 32], "num_res_blocks": RES_BLOCKS, "downscale_factor": 8, "adapter_type": "full_adapter"}, (72, 104), 41),
    # 144x208 px: the XL adapter's 16x unshuffle gives 9x13 (the UNet's level after its first downsampler), then 5x7.
    "sdxl-tiny": ({"in_channels": 1, "channels": [16, 32, 32, 32], "num_res_blocks": RES_BLOCKS, "downscale_factor": 16, "adapter_type": "full_adapter_xl"}, (144, 208), 42),
}
SCALE = 0.8
TIMESTEP = 500.0
# A whole text-to-image run of sd15-tiny with its adapter at the adapter's control size: Euler, CFG, a guidance window
# that leaves out the first call (0/5 < 0.1) and the last two ((3+1)/5 > 0.7), away from the rule's boundaries.
RUN = {"family": "sd15-tiny", "height": 72, "width": 104, "steps": 5, "seed": 1234, "cfg_scale": 7.5, "start": 0.1, "end": 0.7}


def make_adapter(config: dict, seed: int) -> T2IAdapter:
    torch.manual_seed(seed)
    model = T2IAdapter(config["in_channels"], config["channels"], config["num_res_blocks"], config["downscale_factor"], config["adapter_type"] == "full_adapter_xl")
    with torch.no_grad():
        for p in model.parameters():
            # Larger than the default init so the features move the tiny UNet visibly; fp16-exact, as stored.
            p.copy_(fp16_exact(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1)))
    return model.eval()


def half(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.to(torch.float16).numpy() for k, v in state.items()}


@torch.no_grad()
def goldens(family: str, unet, adapter: T2IAdapter, config: dict, size: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    control = fp16_exact(torch.rand(1, config["in_channels"], h, w, generator=g))
    features = adapter(control)
    out = {f"{family}/control": control.to(torch.float16).numpy()}
    for i, f in enumerate(features):
        out[f"{family}/feature_{i}"] = f.numpy()
        print(f"  {family} adapter feature {i}: {tuple(f.shape)}, max |x| {float(f.abs().max()):.3f}")
    cfg = unet.cfg
    sample = fp16_exact(torch.randn(2, cfg.in_channels, h // 8, w // 8, generator=g))
    context = fp16_exact(torch.randn(2, 77, cfg.cross_attention_dim, generator=g))
    t = torch.tensor([TIMESTEP])
    extra = {}
    if cfg.addition_embed_type == "text_time":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        ids = torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=torch.float32)
        extra = {"text_embeds": fp16_exact(torch.randn(2, pooled, generator=g)), "time_ids": ids}
        out[f"{family}/unet/text_embeds"] = extra["text_embeds"].to(torch.float16).numpy()
        out[f"{family}/unet/time_ids"] = ids.numpy()
    plain = unet(sample, t, context, **extra)
    # As diffusers' adapter pipelines pass them: each feature times the scale, repeated over the batch.
    residuals = [(f * SCALE).expand(2, -1, -1, -1).contiguous() for f in features]
    guided = unet(sample, t, context, **extra, intrablock_residuals=residuals)
    out.update({
        f"{family}/unet/sample": sample.to(torch.float16).numpy(),
        f"{family}/unet/encoder_hidden_states": context.to(torch.float16).numpy(),
        f"{family}/unet/timestep": t.numpy(),
        f"{family}/unet/scale": np.array([SCALE], dtype=np.float32),
        f"{family}/unet/out_plain": plain.numpy(),
        f"{family}/unet/out_adapter": guided.numpy(),
    })
    print(f"  {family} unet: max |plain| {float(plain.abs().max()):.3f}, max |adapter - plain| {float((guided - plain).abs().max()):.3f}")
    return out


def png_rgb(path: str, pixels: np.ndarray) -> None:
    """An 8-bit RGB PNG of an [H, W, 3] uint8 array, written by hand (no imaging package): signature, IHDR, one
    zlib-compressed IDAT of filter-0 rows, IEND."""
    import struct
    import zlib

    h, w, _ = pixels.shape
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@torch.no_grad()
def txt2img(fixtures: str, unet, adapter: T2IAdapter, out_dir: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """StableDiffusionAdapterPipeline's loop as diffusers runs it, with our guidance window: the adapter once on the
    control map (uint8 pixels / 255), its features times the scale repeated over both guidance halves, given to the
    UNet only at the model calls in the window (ControlNet's controlnet_keep rule: not while i/n < start, nor once
    (i+1)/n > end), Euler with the model's schedule, the latents decoded."""
    p = RUN
    family = p["family"]
    vae, scaling = load_vae(os.path.join(fixtures, "models"), family)
    context, added, golden_meta = pipeline_inputs(fixtures, family, p["height"], p["width"])
    scheduler_config = read_json(os.path.join(fixtures, "models", family, "scheduler", "scheduler_config.json"))
    s = EulerDiscrete(scheduler_config, p["steps"])
    pixels = torch.randint(0, 256, (p["height"], p["width"], 3), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    png_rgb(os.path.join(out_dir, "control-104x72.png"), pixels.numpy())
    features = adapter(pixels.permute(2, 0, 1)[None].float() / 255)
    noise = torch.randn(1, unet.cfg.in_channels, p["height"] // 8, p["width"] // 8, generator=torch.Generator().manual_seed(p["seed"]))
    latents = noise * s.init_noise_sigma
    n = len(s.timesteps)
    after, active = [], []
    for i, t in enumerate(s.timesteps):
        x = s.scale_model_input(torch.cat([latents, latents]), i)
        on = not (i / n < p["start"] or (i + 1) / n > p["end"])
        active.append(on)
        extra = {"intrablock_residuals": [(f * SCALE).expand(2, -1, -1, -1).contiguous() for f in features]} if on else {}
        uncond, cond = unet(x, torch.tensor(float(t)), context, **added, **extra).chunk(2)
        latents = s.step(uncond + p["cfg_scale"] * (cond - uncond), i, latents)
        after.append(latents)
    image = to_image(vae, latents, scaling)
    call = golden_meta["call_kwargs"]
    meta = {
        "prompt": call["prompt"], "negative_prompt": call["negative_prompt"], "sampler": "Euler",
        "steps": str(p["steps"]), "seed": str(p["seed"]), "cfg_scale": str(p["cfg_scale"]),
        "width": str(p["width"]), "height": str(p["height"]), "control_image": "control-104x72.png",
        "adapter_scale": str(SCALE), "guidance_start": str(p["start"]), "guidance_end": str(p["end"]),
        "active_calls": json.dumps(active), "timesteps": json.dumps([float(t) for t in s.timesteps]),
    }
    print(f"  {family} txt2img {p['width']}x{p['height']} with the adapter: {p['steps']} Euler steps, adapter at calls {active}")
    return {"latents_after_step": torch.stack(after).numpy(), "image_uint8": (image * 255).round().to(torch.uint8).numpy()}, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", required=True, help="the shared reference fixtures (fixtures/reference)")
    ap.add_argument("--out", required=True, help="folder to write the adapters and goldens to")
    ap.add_argument("--tolerance", type=float, default=1e-5, help="largest error against the shared goldens that trusts the model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = os.path.join(args.fixtures, "models")
    print(f"torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    unets = {f: load_unet(models, f) for f in ADAPTERS}
    checks = {f: check_unet(args.fixtures, f, unets[f]) for f in ADAPTERS}
    checks["rng"] = check_generator(args.fixtures)
    failed = {k: v for k, v in checks.items() if not v <= args.tolerance}
    if failed:
        sys.exit(f"the torch UNet does not reproduce the shared goldens (tolerance {args.tolerance:g}): {failed}; nothing written")

    os.makedirs(args.out, exist_ok=True)
    provenance = {"made_by": "scripts/reference/t2i_adapter.py", "torch": torch.__version__, "checks": json.dumps({k: f"{v:.2e}" for k, v in checks.items()})}
    tensors: dict[str, np.ndarray] = {}
    for family, (config, size, seed) in ADAPTERS.items():
        adapter = make_adapter(config, seed)
        folder = os.path.join(args.out, f"{family}-adapter")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump({"_class_name": "T2IAdapter", **config}, f, indent=2)
            f.write("\n")
        safetensors_io.write(os.path.join(folder, "diffusion_pytorch_model.safetensors"), half(adapter.state_dict()), provenance)
        if family == "sd15-tiny":
            safetensors_io.write(os.path.join(args.out, f"{family}-adapter.pth.safetensors"), half(tencentarc_state_dict(adapter, RES_BLOCKS)), provenance)
        tensors.update(goldens(family, unets[family], adapter, config, size, seed))
        if family == RUN["family"]:
            run, meta = txt2img(args.fixtures, unets[family], adapter, args.out)
            safetensors_io.write(os.path.join(args.out, f"txt2img-{family}-104x72.safetensors"), run, {**provenance, **meta})
    safetensors_io.write(os.path.join(args.out, "goldens.safetensors"), tensors, provenance)
    for root, _, files in sorted(os.walk(args.out)):
        for name in sorted(files):
            print(f"  {os.path.relpath(os.path.join(root, name), args.out)}: {os.path.getsize(os.path.join(root, name)):,} bytes")


if __name__ == "__main__":
    main()
