import { describe, expect, it } from "vitest";
import { exifWithUserComment, readUserComment } from "../../src/image/exif-user-comment.js";

describe("EXIF UserComment", () => {
  it("round-trips any text, and writes it as A1111 (piexif) does: big-endian TIFF, UNICODE prefix, UTF-16BE", () => {
    const text = "a fox 🦊 in the snow, 雪\nSteps: 20, Seed: 1";
    const tiff = exifWithUserComment(text);
    expect(tiff.toString("latin1", 0, 4)).toBe("MM\0*");
    const at = tiff.indexOf("UNICODE\0");
    expect(at).toBeGreaterThan(0);
    expect(tiff.subarray(at + 8)).toEqual(Buffer.from(text, "utf16le").swap16());
    expect(readUserComment(tiff)).toBe(text);
    // With the "Exif\0\0" header a JPEG APP1 segment or sharp's metadata carries.
    expect(readUserComment(Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]))).toBe(text);
  });

  it("damaged or foreign blocks give undefined rather than a crash or garbage", () => {
    const tiff = exifWithUserComment("hello");
    for (let cut = 0; cut < tiff.length; cut += 3) expect(readUserComment(tiff.subarray(0, cut))).toBeUndefined();
    expect(readUserComment(Buffer.from("not exif at all"))).toBeUndefined();
    // An Exif IFD pointer aimed back at IFD0 (at 8; the pointer's value sits at 8 + 2 + 8) finds no comment.
    const loop = Buffer.from(tiff);
    expect(loop.readUInt16BE(10)).toBe(0x8769);
    loop.writeUInt32BE(8, 18);
    expect(readUserComment(loop)).toBeUndefined();
  });
});
