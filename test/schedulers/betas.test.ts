import { describe, expect, it } from "vitest";
import { trainingSchedule } from "../../src/schedulers/betas.js";
import { npArange, npLinspace, roundHalfEven, torchLinspaceF32 } from "../../src/schedulers/numerics.js";
import { golden, HAVE_REFERENCE } from "../helpers/fixtures.js";

const SD_BETAS = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear" as const,
  trained_betas: null,
};

describe.skipIf(!HAVE_REFERENCE)("training schedule", () => {
  it("reproduces SD's scaled_linear betas and alphas_cumprod bit for bit", () => {
    const g = golden("goldens/schedulers/scaled_linear_1000.safetensors");
    const ours = trainingSchedule(SD_BETAS, ["scaled_linear"]);
    expect(Array.from(ours.betas)).toEqual(Array.from(g.get("betas")));
    expect(Array.from(ours.alphasCumprod)).toEqual(Array.from(g.get("alphas_cumprod")));
  });
});

describe("training schedule options", () => {
  it("uses trained_betas as given and refuses a length that disagrees with num_train_timesteps", () => {
    const betas = Array.from({ length: 10 }, (_, i) => 0.01 * (i + 1));
    const s = trainingSchedule({ ...SD_BETAS, num_train_timesteps: 10, trained_betas: betas }, ["scaled_linear"]);
    expect(s.betas[9]).toBeCloseTo(0.1, 7);
    expect(() => trainingSchedule({ ...SD_BETAS, trained_betas: betas }, ["scaled_linear"])).toThrow(
      /trained_betas has 10 entries/,
    );
  });

  it("rescales to zero terminal SNR: the last alphas_cumprod is 0 and the first unchanged", () => {
    const plain = trainingSchedule(SD_BETAS, ["scaled_linear"]);
    const zsnr = trainingSchedule(SD_BETAS, ["scaled_linear"], true);
    expect(zsnr.alphasCumprod[999]).toBe(0);
    expect(zsnr.alphasCumprod[0]).toBeCloseTo(plain.alphasCumprod[0]!, 6);
  });

  it("caps squaredcos_cap_v2 betas at 0.999", () => {
    const s = trainingSchedule({ ...SD_BETAS, beta_schedule: "squaredcos_cap_v2" }, ["squaredcos_cap_v2"]);
    expect(Math.max(...s.betas)).toBeCloseTo(0.999, 6);
    expect(s.betas[0]).toBeGreaterThan(0);
  });
});

describe("numeric helpers", () => {
  it("round halves to even like numpy", () => {
    expect([0.5, 1.5, 2.5, 499.5, 249.75, -0.5, -1.5].map(roundHalfEven)).toEqual([0, 2, 2, 500, 250, -0, -2]);
  });

  it("follow numpy's linspace and arange, including linspace's exact endpoint", () => {
    expect(Array.from(npLinspace(0, 999, 4))).toEqual([0, 333, 666, 999]);
    expect(Array.from(npLinspace(0, 50, 4, false))).toEqual([0, 12.5, 25, 37.5]);
    expect(Array.from(npLinspace(0, 1, 1))).toEqual([0]);
    expect(Array.from(npArange(1000, 0, -1000 / 3)).map(roundHalfEven)).toEqual([1000, 667, 333]);
  });

  it("give torch.linspace's float32 values, computed from both ends", () => {
    const x = torchLinspaceF32(0, 1, 5);
    expect(Array.from(x)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(torchLinspaceF32(2, 3, 1)[0]).toBe(2);
  });
});
