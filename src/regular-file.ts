import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from "node:fs";
import { jsonTooDeep, MAX_JSON_DEPTH } from "./json-depth.js";

/**
 * Reading files whose paths come from outside (a model, a model folder's configs and tokenizer, an input image)
 * without trusting what they are. `readFileSync` on a named pipe waits for a writer forever, a device such as
 * /dev/zero never ends, and a folder fails only at the first read with a raw EISDIR; a 2 GB "config.json" is read
 * whole before anyone looks at it. Everything opened here is opened without blocking and refused, with a message
 * saying what the path is, unless it is a regular file of a plausible size.
 */

/** The error class a caller reports its file problems as (CheckpointError for model files, InputError for user files). */
export type ErrorClass = new (message: string) => Error;

export interface ReadOptions {
  /** What to do about it, appended to every message ("re-download the model", "pass the path of an image"). */
  readonly hint: string;
  /** Files larger than this are refused before reading. */
  readonly maxBytes: number;
}

/**
 * The largest side file a model folder holds is the tokenizer's vocab.json (about 1 MB) or a shard index; 64 MiB
 * leaves room for anything real while keeping a mistaken multi-GB file from being read into memory.
 */
export const MAX_SIDE_FILE_BYTES = 64 * 2 ** 20;

// O_NONBLOCK makes opening a FIFO for reading return at once instead of waiting for a writer; fstat then says what
// it is. It changes nothing for regular files, whose reads never block. Windows has neither FIFOs nor the flag.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Opens `path` for reading if it is a regular file; returns the descriptor and the size. The caller closes it. */
export function openRegularFile(path: string, error: ErrorClass, hint: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    // A socket cannot be opened at all (ENXIO): say what it is rather than the errno.
    const kind = kindAt(path);
    if (kind) throw new error(notRegular(path, kind, hint));
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new error(`${path}: no such file; ${hint}`);
    throw new error(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ${hint}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new error(notRegular(path, kindOf(stat), hint));
    return { fd, size: stat.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The whole of a regular file of at most `maxBytes`. */
export function readRegularFile(path: string, error: ErrorClass, options: ReadOptions): Buffer {
  const { fd, size } = openRegularFile(path, error, options.hint);
  try {
    if (size > options.maxBytes) {
      throw new error(
        `${path} is ${size} bytes, more than the ${options.maxBytes} bytes allowed for it; ${options.hint}`,
      );
    }
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buf, done, size - done, done);
      if (n === 0) break; // shrank while being read: parse what is there, which reports the damage
      done += n;
    }
    return done === size ? buf : buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/**
 * The text of a JSON file, refused if it nests deeper than MAX_JSON_DEPTH: for callers that parse it themselves
 * (scheduler configs with Python's NaN and Infinity).
 */
export function readJsonText(path: string, error: ErrorClass, options: ReadOptions): string {
  const text = readRegularFile(path, error, options).toString("utf8");
  if (jsonTooDeep(text, MAX_JSON_DEPTH)) {
    throw new error(
      `${path}: JSON nested more than ${MAX_JSON_DEPTH} levels deep, which no real file does; ${options.hint}`,
    );
  }
  return text;
}

/** A JSON file, read and parsed with the checks above; syntax errors name the file. */
export function readJsonFile(path: string, error: ErrorClass, options: ReadOptions): unknown {
  const text = readJsonText(path, error, options);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new error(`${path} is not valid JSON (${(e as Error).message}); ${options.hint}`);
  }
}

function notRegular(path: string, kind: string, hint: string): string {
  return `${path} is ${kind}, not a regular file; ${hint}`;
}

function kindAt(path: string): string | undefined {
  try {
    const stat = statSync(path);
    return stat.isFile() ? undefined : kindOf(stat);
  } catch {
    return undefined;
  }
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return "a folder";
  if (stat.isFIFO()) return "a named pipe (FIFO)";
  if (stat.isSocket()) return "a socket";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  return "not a file";
}
