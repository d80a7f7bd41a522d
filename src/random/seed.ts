/**
 * Seeds as PyTorch and AUTOMATIC1111 take them: any unsigned 64-bit integer (`torch.Generator().manual_seed(s)`
 * keeps all 64 bits as the seed and starts its Mersenne Twister from the low 32), with -1 asking for a random one.
 *
 * A JavaScript number holds integers exactly only up to 2^53 - 1, so a seed arrives as a bigint, as a decimal
 * string, or as a number that is a safe integer; a number beyond that has already lost digits (JSON.parse of
 * `18446744073709551615` gives 18446744073709551616), and is refused rather than silently turned into another
 * seed. Pure functions with no Node-only imports: the HTTP schemas, which also bundle for the page, use them.
 */
import { InputError } from "../errors.js";

/** The largest seed: 2^64 - 1. */
export const MAX_SEED = 2n ** 64n - 1n;
/** The seed that asks for a random one, as in AUTOMATIC1111. */
export const RANDOM_SEED = -1n;
/** A seed as a caller may give it: a safe-integer number, a bigint, or a decimal string. */
export type SeedInput = number | bigint | string;

/** AUTOMATIC1111 draws random seeds with `random.randrange(4294967294)`: below 2^32 - 2. */
const RANDOM_SEED_LIMIT = 4294967294;
const DECIMAL = /^-?\d+$/;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const RANGE_HINT = `use an integer from 0 to ${MAX_SEED}, or -1 for a random seed`;
const PRECISION_HINT = `numbers above ${Number.MAX_SAFE_INTEGER} (2^53 - 1) lose digits in JavaScript and JSON: pass the seed as a decimal string (e.g. "${MAX_SEED}"), or as a bigint from JavaScript`;

/**
 * The exact integer a seed denotes, whatever its range: a safe-integer number, a bigint, or a string of decimal
 * digits with an optional minus sign (surrounding spaces are ignored). Anything else is an InputError naming it
 * (`what` starts the message: "--seed", or "" where the caller names the field itself).
 */
export function seedInteger(value: unknown, what = "seed"): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") {
    if (Number.isSafeInteger(value)) return BigInt(value);
    if (Number.isInteger(value))
      throw new InputError(`${subject(what, String(value))} is not exact: ${PRECISION_HINT}`);
    throw new InputError(`${subject(what, String(value))} is not an integer: ${RANGE_HINT}`);
  }
  if (typeof value === "string" && DECIMAL.test(value.trim())) return BigInt(value.trim());
  throw new InputError(`${subject(what, describe(value))} is not an integer: ${RANGE_HINT}`);
}

/** A seed as requested: an integer from 0 to 2^64 - 1, or -1 (RANDOM_SEED) for a random one. */
export function parseSeed(value: unknown, what = "seed"): bigint {
  const seed = seedInteger(value, what);
  if (seed < RANDOM_SEED || seed > MAX_SEED) {
    const torch =
      seed < 0n && seed >= -(2n ** 63n) ? ` (PyTorch's manual_seed(${seed}) is seed ${BigInt.asUintN(64, seed)})` : "";
    throw new InputError(`${subject(what, String(seed))} is out of range: ${RANGE_HINT}${torch}`);
  }
  return seed;
}

/** A random seed as AUTOMATIC1111 picks one: uniform below 4294967294, so it reads the same in any tool. */
export function randomSeed(): bigint {
  const word = new Uint32Array(1);
  // Rejection keeps the draw uniform: the two top values of a 32-bit word are redrawn.
  do {
    globalThis.crypto.getRandomValues(word);
  } while (word[0]! >= RANDOM_SEED_LIMIT);
  return BigInt(word[0]!);
}

/**
 * A seed for JSON written by us for JavaScript readers: a number while that is exact (up to 2^53 - 1), the
 * decimal string beyond, since JSON.parse would round a longer number to another seed.
 */
export function seedToJson(seed: bigint): number | string {
  return seed <= MAX_SAFE && seed >= -MAX_SAFE ? Number(seed) : seed.toString();
}

function subject(what: string, value: string): string {
  return what === "" ? value : `${what} ${value}`;
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
