import { readFileSync } from "node:fs";

/**
 * Damage in a SQLite write-ahead log (`<db>-wal`) that SQLite itself would not report. SQLite trusts the log up
 * to its first frame that fails the checksum and silently drops the rest; with a damaged header it drops the
 * whole log, and the next write or close erases it. So this must run before SQLite opens the database.
 *
 * Reported: a header that is not a WAL header, and committed transactions after a damaged frame. Not reported
 * (indistinguishable from a normal crash): damage confined to the last transaction, whose commit may never have
 * reached the disk, and frames of an earlier generation of the log (other salts), which SQLite left behind on
 * purpose. The format: https://www.sqlite.org/fileformat2.html#walformat
 */
export function walDamage(path: string): string | undefined {
  let wal: Buffer;
  try {
    wal = readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  if (wal.length === 0) return undefined;
  if (wal.length < HEADER_BYTES)
    return `it is ${wal.length} bytes long, shorter than a write-ahead log header (${HEADER_BYTES})`;
  const magic = wal.readUInt32BE(0);
  if (magic !== MAGIC_LE && magic !== MAGIC_BE) return "its header is not that of a SQLite write-ahead log";
  const bigEndian = magic === MAGIC_BE;
  const pageSize = wal.readUInt32BE(8);
  if (wal.readUInt32BE(4) !== WAL_VERSION || pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    return "its header is not that of a SQLite write-ahead log";
  }
  let sum = checksum(wal, 0, 24, [0, 0], bigEndian);
  if (sum[0] !== wal.readUInt32BE(24) || sum[1] !== wal.readUInt32BE(28)) return "its header fails its checksum";

  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  const frameBytes = FRAME_HEADER_BYTES + pageSize;
  const frames = Math.floor((wal.length - HEADER_BYTES) / frameBytes);
  const ours = (at: number) => wal.readUInt32BE(at + 8) === salt1 && wal.readUInt32BE(at + 12) === salt2;
  const isCommit = (at: number) => wal.readUInt32BE(at + 4) !== 0;

  // The frames SQLite will use: same salts, page number set, and the running checksum matches.
  let firstBad = frames;
  for (let i = 0; i < frames; i++) {
    const at = HEADER_BYTES + i * frameBytes;
    if (!ours(at) || wal.readUInt32BE(at) === 0) {
      firstBad = i;
      break;
    }
    sum = checksum(wal, at, 8, sum, bigEndian);
    sum = checksum(wal, at + FRAME_HEADER_BYTES, pageSize, sum, bigEndian);
    if (sum[0] !== wal.readUInt32BE(at + 16) || sum[1] !== wal.readUInt32BE(at + 20)) {
      firstBad = i;
      break;
    }
  }
  // Past it, frames of this generation of the log. Each commit was flushed before the next transaction was
  // written, so a commit frame with more of this generation after it was on disk: that transaction is lost.
  let commitSeen = false;
  for (let i = firstBad; i < frames; i++) {
    const at = HEADER_BYTES + i * frameBytes;
    if (!ours(at)) continue;
    if (commitSeen)
      return `frame ${firstBad + 1} of its ${frames} is damaged, and SQLite would silently drop the transactions committed after it`;
    if (isCommit(at)) commitSeen = true;
  }
  return undefined;
}

const HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;
const WAL_VERSION = 3007000;
/** The low bit says in which byte order the checksums read the log's words. */
const MAGIC_LE = 0x377f0682;
const MAGIC_BE = 0x377f0683;

/** SQLite's WAL checksum: two running 32-bit sums over pairs of 32-bit words. */
function checksum(
  buf: Buffer,
  start: number,
  length: number,
  init: readonly [number, number],
  bigEndian: boolean,
): [number, number] {
  let s1 = init[0];
  let s2 = init[1];
  for (let i = start; i < start + length; i += 8) {
    const x0 = bigEndian ? buf.readUInt32BE(i) : buf.readUInt32LE(i);
    const x1 = bigEndian ? buf.readUInt32BE(i + 4) : buf.readUInt32LE(i + 4);
    s1 = (s1 + x0 + s2) >>> 0;
    s2 = (s2 + x1 + s1) >>> 0;
  }
  return [s1, s2];
}
