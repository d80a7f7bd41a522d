import { describe, expect, it } from "vitest";
import { loadOptionsOf } from "../../src/cli/model-options.js";
import { InputError } from "../../src/errors.js";

const flags = { watermark: true, safetyCheck: true, provenance: false };

describe("serve and worker --precision", () => {
  it("passes fp32 by default and int8 when asked to the pipeline's load options", async () => {
    expect((await loadOptionsOf(flags, () => {})).precision).toBe("fp32");
    expect((await loadOptionsOf({ ...flags, precision: "int8" }, () => {})).precision).toBe("int8");
  });

  it("refuses another value, naming the ones it takes", async () => {
    const r = loadOptionsOf({ ...flags, precision: "fp16" }, () => {});
    await expect(r).rejects.toThrow(InputError);
    await expect(r).rejects.toThrow(/--precision "fp16": expected one of fp32, int8/);
  });
});
