import { describe, expect, it } from "vitest";
import { UNET_IO } from "../../src/models/unet.js";
import { denoise } from "../../src/pipeline/denoise.js";
import type { Session } from "../../src/runtime/session.js";
import { createScheduler, STABLE_DIFFUSION_SCHEDULER_CONFIG } from "../../src/schedulers/index.js";

/**
 * The family-neutral loop with a stand-in UNet that records what it is fed: which halves it sees with and
 * without guidance, in which order, and with which extra condition inputs. Parity of the whole loop with the
 * reference is tested end to end in txt2img.test.ts and inpaint.test.ts.
 */
function recordingUnet(): { unet: Session; calls: Record<string, { data: Float32Array; dims: readonly number[] }>[] } {
  const calls: Record<string, { data: Float32Array; dims: readonly number[] }>[] = [];
  const unet = {
    run: async (feeds: Record<string, { data: Float32Array; dims: readonly number[] }>) => {
      calls.push(feeds);
      const sample = feeds[UNET_IO.sample]!;
      return { [UNET_IO.out]: { data: new Float32Array(sample.data.length), dims: sample.dims } };
    },
  } as unknown as Session;
  return { unet, calls };
}

async function run(cfgScale: number) {
  const { unet, calls } = recordingUnet();
  const scheduler = createScheduler("euler", STABLE_DIFFUSION_SCHEDULER_CONFIG);
  scheduler.setTimesteps(2);
  const shape = [2, 4, 2, 2] as const;
  const condition = (value: number) =>
    new Map([
      [UNET_IO.encoderHiddenStates, { data: new Float32Array(3 * 5).fill(value), dims: [3, 5] }],
      ["time_ids", { data: Float32Array.of(value, value), dims: [2] }],
    ]);
  await denoise({
    unet,
    scheduler,
    timesteps: Array.from(scheduler.timesteps),
    latents: new Float32Array(2 * 16),
    shape,
    noise: { randn: (s) => new Float32Array(s.reduce((a, b) => a * b, 1)) },
    cfgScale,
    conditions: { uncond: condition(-1), cond: condition(1) },
    onStep: () => {},
  });
  return calls;
}

describe("denoise", () => {
  it("with guidance (cfg > 1) runs both halves in one batch, the negative prompt's first, every condition input batched alike", async () => {
    const calls = await run(7);
    expect(calls).toHaveLength(2);
    const feeds = calls[0]!;
    expect(feeds[UNET_IO.sample]!.dims).toEqual([4, 4, 2, 2]);
    expect(feeds[UNET_IO.encoderHiddenStates]!.dims).toEqual([4, 3, 5]);
    expect(Array.from(feeds["time_ids"]!.data)).toEqual([-1, -1, -1, -1, 1, 1, 1, 1]);
    expect(feeds["time_ids"]!.dims).toEqual([4, 2]);
  });

  it("with cfg 1 or below runs the positive half alone, as diffusers does (guidance off, as distilled models use it)", async () => {
    for (const cfg of [1, 0.5, 0]) {
      const feeds = (await run(cfg))[0]!;
      expect([cfg, feeds[UNET_IO.sample]!.dims]).toEqual([cfg, [2, 4, 2, 2]]);
      expect(Array.from(feeds["time_ids"]!.data)).toEqual([1, 1, 1, 1]);
    }
  });
});
