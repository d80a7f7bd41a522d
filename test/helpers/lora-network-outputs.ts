import { CLIP_TEXT_IO } from "../../src/models/clip-text.js";
import { UNET_IO } from "../../src/models/unet.js";
import type { Networks } from "../../src/pipeline/networks.js";
import { golden } from "./fixtures.js";

/** The timesteps goldens/sd15-tiny-lora holds the UNet's outputs at. */
export const LORA_CASES = ["t999", "t287_5", "t_per_batch"] as const;

/** sd15-tiny's UNet output on the inputs of goldens/sd15-tiny-lora for one case. */
export async function loraUnetOut(nets: Networks, c: (typeof LORA_CASES)[number]): Promise<Float32Array> {
  const u = golden("goldens/sd15-tiny-lora/lora_unet.safetensors");
  const t = u.get(`${c}/timestep`);
  const out = await (await nets.get("unet")).run({
    [UNET_IO.sample]: { data: u.get("sample"), dims: u.shape("sample") },
    [UNET_IO.timestep]: { data: t, dims: [t.length] },
    [UNET_IO.encoderHiddenStates]: { data: u.get("encoder_hidden_states"), dims: u.shape("encoder_hidden_states") },
  });
  return out[UNET_IO.out]!.data;
}

/** sd15-tiny's text encoder output on the token ids of goldens/sd15-tiny-lora. */
export async function loraTextOut(nets: Networks): Promise<Float32Array> {
  const g = golden("goldens/sd15-tiny-lora/lora_text_encoder.safetensors");
  const out = await (await nets.get("text_encoder")).run({
    [CLIP_TEXT_IO.inputIds]: { data: g.ints("input_ids"), dims: [3, 77] },
    [CLIP_TEXT_IO.extraTokens]: { data: new Float32Array(32), dims: [1, 32] },
  });
  return out[CLIP_TEXT_IO.lastHidden]!.data;
}
