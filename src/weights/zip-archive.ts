import { CheckpointError } from "../errors.js";
import type { ByteSource } from "./byte-source.js";

/**
 * The central directory of a zip archive as torch.save writes it (since PyTorch 1.6): every entry stored
 * uncompressed, so a tensor's bytes are read straight from the file at the entry's data offset. Only the
 * directory is read here; the entries' contents are read by whoever needs them. ZIP64 (archives over 4 GB, which
 * SD checkpoints are) is followed; compressed, encrypted or split archives are refused: torch never writes them.
 */
export interface ZipEntry {
  readonly name: string;
  /** Absolute file offset of the entry's first data byte. */
  readonly dataOffset: number;
  readonly size: number;
}

/** Far more entries than a checkpoint has (one per storage: a few thousand), few enough to list in milliseconds. */
export const MAX_ZIP_ENTRIES = 200_000;
/** A file name in a torch archive is "<archive>/data/<key>"; anything longer is not one. */
const MAX_NAME_BYTES = 4096;

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
/** The end record is 22 bytes, followed by a comment of at most 65,535. */
const EOCD_SEARCH = 22 + 0xffff;

export function readZipDirectory(source: ByteSource, size: number, path: string): Map<string, ZipEntry> {
  const corrupt = (what: string) =>
    new CheckpointError(`${path}: ${what}; the zip archive is truncated or corrupt (re-download the file)`);
  const tailLength = Math.min(size, EOCD_SEARCH);
  const tail = Buffer.alloc(tailLength);
  source.read(tail, size - tailLength);
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw corrupt("no end-of-central-directory record");
  let count = tail.readUInt16LE(eocd + 10);
  let directorySize = tail.readUInt32LE(eocd + 12);
  let directoryOffset = tail.readUInt32LE(eocd + 16);
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0)
    throw new CheckpointError(`${path}: a zip archive split over several disks is not a torch.save file`);
  if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    // ZIP64: a locator just before the end record points at the 64-bit end record.
    const locatorAt = size - tailLength + eocd - 20;
    if (locatorAt < 0) throw corrupt("a ZIP64 archive without its locator");
    const locator = Buffer.alloc(20);
    source.read(locator, locatorAt);
    if (locator.readUInt32LE(0) !== ZIP64_LOCATOR_SIGNATURE) throw corrupt("a ZIP64 archive without its locator");
    const recordAt = safeNumber(locator.readBigUInt64LE(8), corrupt);
    if (recordAt + 56 > size) throw corrupt("the ZIP64 end record lies past the end of the file");
    const record = Buffer.alloc(56);
    source.read(record, recordAt);
    if (record.readUInt32LE(0) !== ZIP64_EOCD_SIGNATURE) throw corrupt("no ZIP64 end-of-central-directory record");
    count = safeNumber(record.readBigUInt64LE(32), corrupt);
    directorySize = safeNumber(record.readBigUInt64LE(40), corrupt);
    directoryOffset = safeNumber(record.readBigUInt64LE(48), corrupt);
  }
  if (count > MAX_ZIP_ENTRIES)
    throw new CheckpointError(
      `${path}: the zip archive lists ${count} entries, more than the ${MAX_ZIP_ENTRIES} any checkpoint has`,
    );
  if (directoryOffset + directorySize > size || directorySize < count * 46)
    throw corrupt(`the central directory (${directorySize} bytes at ${directoryOffset}) does not fit the file`);
  const dir = Buffer.alloc(directorySize);
  source.read(dir, directoryOffset);
  const entries = new Map<string, ZipEntry>();
  const spans: Array<[number, number, string]> = [];
  let at = 0;
  for (let n = 0; n < count; n++) {
    if (at + 46 > dir.length || dir.readUInt32LE(at) !== CENTRAL_SIGNATURE) throw corrupt(`central entry ${n} is cut`);
    const flags = dir.readUInt16LE(at + 8);
    const method = dir.readUInt16LE(at + 10);
    let compressed = dir.readUInt32LE(at + 20);
    let stored = dir.readUInt32LE(at + 24);
    const nameLength = dir.readUInt16LE(at + 28);
    const extraLength = dir.readUInt16LE(at + 30);
    const commentLength = dir.readUInt16LE(at + 32);
    let localAt = dir.readUInt32LE(at + 42);
    const end = at + 46 + nameLength + extraLength + commentLength;
    if (end > dir.length || nameLength > MAX_NAME_BYTES) throw corrupt(`central entry ${n} is cut`);
    const name = dir.subarray(at + 46, at + 46 + nameLength).toString("utf8");
    const extra = dir.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength);
    // The ZIP64 extra field holds, in order, those of the three values that read 0xffffffff.
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e);
      const length = extra.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        const next = () => {
          if (f + 8 > e + 4 + length || f + 8 > extra.length) throw corrupt(`entry "${name}" has a short ZIP64 field`);
          const v = safeNumber(extra.readBigUInt64LE(f), corrupt);
          f += 8;
          return v;
        };
        if (stored === 0xffffffff) stored = next();
        if (compressed === 0xffffffff) compressed = next();
        if (localAt === 0xffffffff) localAt = next();
      }
      e += 4 + length;
    }
    if (flags & 0x1) throw new CheckpointError(`${path}: entry "${name}" is encrypted; torch.save never encrypts`);
    if (method !== 0 || compressed !== stored)
      throw new CheckpointError(
        `${path}: entry "${name}" is compressed (method ${method}); torch.save stores entries uncompressed, so this ` +
          `archive was repacked by another tool: re-save it with torch.save or convert it to .safetensors`,
      );
    if (localAt + 30 > size) throw corrupt(`entry "${name}" starts past the end of the file`);
    const local = Buffer.alloc(30);
    source.read(local, localAt);
    if (local.readUInt32LE(0) !== LOCAL_SIGNATURE) throw corrupt(`entry "${name}" has no local header`);
    const dataOffset = localAt + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataOffset + stored > size)
      throw corrupt(`entry "${name}" (${stored} bytes at ${dataOffset}) goes past the end of the ${size}-byte file`);
    if (entries.has(name)) throw corrupt(`entry "${name}" appears twice`);
    entries.set(name, { name, dataOffset, size: stored });
    if (stored > 0) spans.push([dataOffset, dataOffset + stored, name]);
    at = end;
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++)
    if (spans[i]![0] < spans[i - 1]![1]) throw corrupt(`entries "${spans[i - 1]![2]}" and "${spans[i]![2]}" overlap`);
  return entries;
}

function safeNumber(v: bigint, corrupt: (what: string) => Error): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`an offset of ${v} bytes`);
  return Number(v);
}
