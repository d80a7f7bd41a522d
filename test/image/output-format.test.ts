import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { formatForPath, sniffFormat } from "../../src/image/output-format.js";

describe("the output format follows the file name's extension", () => {
  it("png, jpg/jpeg and webp, in any case", () => {
    expect(formatForPath("out.png")).toBe("png");
    expect(formatForPath("dir.v2/out.PNG")).toBe("png");
    expect(formatForPath("out.jpg")).toBe("jpeg");
    expect(formatForPath("out.JPEG")).toBe("jpeg");
    expect(formatForPath("out-{seed}.webp")).toBe("webp");
  });

  it("an unknown or missing extension is an InputError naming the supported ones", () => {
    for (const name of ["out.gif", "out.tiff", "out", "dir.png/out"]) {
      expect(() => formatForPath(name)).toThrow(InputError);
      expect(() => formatForPath(name)).toThrow(/\.png.*\.jpg.*\.jpeg.*\.webp/);
    }
  });

  it("formats are recognised by their first bytes", () => {
    expect(sniffFormat(Buffer.from("89504e470d0a1a0a0000", "hex"))).toBe("png");
    expect(sniffFormat(Buffer.from("ffd8ffe000104a464946", "hex"))).toBe("jpeg");
    expect(sniffFormat(Buffer.from("RIFF\x10\0\0\0WEBPVP8 ", "latin1"))).toBe("webp");
    expect(sniffFormat(Buffer.from("RIFF\x10\0\0\0WAVEfmt ", "latin1"))).toBeUndefined();
    expect(sniffFormat(Buffer.from("GIF89a", "latin1"))).toBeUndefined();
  });
});
