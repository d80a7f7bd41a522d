import { describe, expect, it } from "vitest";
import { fromQueuedGeneration, toQueuedGeneration, wireParameters } from "../../src/worker/queue-protocol.js";

describe("a queued generation's data on Redis", () => {
  it("carries each ControlNet unit's control image through JSON, in unit order, with the unit's parameters", () => {
    const a = Uint8Array.from([137, 80, 78, 71, 1]),
      b = Uint8Array.from([255, 216, 255, 2]);
    const data = toQueuedGeneration(
      {
        prompt: "x",
        seed: 3n,
        controlnet: [
          { image: a, model: "/cn/one", module: "scribble", weight: 0.5 },
          { image: b, model: "/cn/two", guidanceEnd: 0.4 },
        ],
      },
      250,
    );
    const back = fromQueuedGeneration(JSON.parse(JSON.stringify(data)) as typeof data);
    expect(
      back.controlnet?.map((u) => [u.model, u.module, u.weight, u.guidanceEnd, [...(u.image as Uint8Array)]]),
    ).toEqual([
      ["/cn/one", "scribble", 0.5, undefined, [...a]],
      ["/cn/two", undefined, undefined, 0.4, [...b]],
    ]);
    expect(back.seed).toBe("3");
  });

  it("refuses a control image given as a path: a worker elsewhere cannot read the submitting machine's files", () => {
    expect(() =>
      toQueuedGeneration({ prompt: "x", controlnet: [{ image: "/tmp/sketch.png", model: "/cn/one" }] }, undefined),
    ).toThrow(/control image of ControlNet unit 0 of a queued job must be bytes/);
  });

  it("a result's parameters leave the control images behind: the job's record has them, Redis need not hold them again", () => {
    const image = new Uint8Array(5000).fill(7);
    const wire = wireParameters({
      prompt: "x",
      negativePrompt: "",
      steps: 3,
      cfgScale: 7,
      seed: 3n,
      sampler: "euler-a",
      schedule: "automatic",
      width: 64,
      height: 64,
      batchSize: 1,
      batchCount: 1,
      denoisingStrength: 1,
      clipSkip: 1,
      controlnet: [
        {
          image,
          model: "/cn/one",
          module: "scribble",
          weight: 0.5,
          guidanceStart: 0,
          guidanceEnd: 1,
          resizeMode: "Crop and Resize",
          thresholdA: 64,
        },
      ],
    });
    expect(JSON.stringify(wire).length).toBeLessThan(1000);
    expect(wire.controlnet).toEqual([
      {
        image: "",
        model: "/cn/one",
        module: "scribble",
        weight: 0.5,
        guidanceStart: 0,
        guidanceEnd: 1,
        resizeMode: "Crop and Resize",
        thresholdA: 64,
      },
    ]);
  });
});
