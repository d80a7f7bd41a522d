/**
 * Rate-1/3 convolutional code, constraint length 7 (generators 133, 171, 165 octal, the code of 3GPP LTE),
 * terminated with 6 zero bits, and its soft-decision Viterbi decoder. The robust watermark reads each coded bit
 * as a correlation whose sign is the bit and whose size is the evidence; Viterbi decoding of those soft values
 * gains several dB over deciding each bit alone, which is what lets a 64-bit message survive JPEG and rescaling
 * at an invisible strength.
 */
import { InternalError } from "../../errors.js";

const MEMORY = 6;
const STATES = 1 << MEMORY;
const GENERATORS = [0o133, 0o171, 0o165] as const;

/** Coded bits per message of `length` bits (tail included). */
export function codedLength(length: number): number {
  return (length + MEMORY) * GENERATORS.length;
}

function parity(x: number): number {
  x ^= x >> 4;
  x ^= x >> 2;
  x ^= x >> 1;
  return x & 1;
}

/** Output bits for input `bit` entering a register whose previous 6 inputs are `state` (newest in bit 5). */
function outputs(state: number, bit: number): number[] {
  const register = (bit << MEMORY) | state;
  return GENERATORS.map((g) => parity(register & g));
}

export function convolutionalEncode(message: readonly number[]): number[] {
  const coded: number[] = [];
  let state = 0;
  for (const bit of [...message, ...new Array<number>(MEMORY).fill(0)]) {
    coded.push(...outputs(state, bit));
    state = (state >> 1) | (bit << (MEMORY - 1));
  }
  return coded;
}

/**
 * Maximum-likelihood message for soft values (positive = coded bit 1, magnitude = confidence), assuming
 * equal Gaussian noise on every value: the path maximising the correlation with the received values.
 */
export function viterbiDecode(soft: ArrayLike<number>, length: number): number[] {
  const steps = length + MEMORY;
  if (soft.length !== steps * GENERATORS.length)
    throw new InternalError(
      `Viterbi: ${soft.length} soft values for a ${length}-bit message, expected ${steps * GENERATORS.length}`,
    );
  const table = Array.from({ length: STATES }, (_, s) => [outputs(s, 0), outputs(s, 1)] as const);
  let metric = new Float64Array(STATES).fill(-Infinity);
  metric[0] = 0;
  const from = new Uint8Array(steps * STATES);
  const input = new Uint8Array(steps * STATES);
  for (let t = 0; t < steps; t++) {
    const next = new Float64Array(STATES).fill(-Infinity);
    const s0 = soft[3 * t]!,
      s1 = soft[3 * t + 1]!,
      s2 = soft[3 * t + 2]!;
    // The tail forces zeros: only the 0 branch is allowed there.
    const maxBit = t < length ? 1 : 0;
    for (let state = 0; state < STATES; state++) {
      const m = metric[state]!;
      if (m === -Infinity) continue;
      for (let bit = 0; bit <= maxBit; bit++) {
        const o = table[state]![bit]!;
        const score = m + (o[0] ? s0 : -s0) + (o[1] ? s1 : -s1) + (o[2] ? s2 : -s2);
        const to = (state >> 1) | (bit << (MEMORY - 1));
        if (score > next[to]!) {
          next[to] = score;
          from[t * STATES + to] = state;
          input[t * STATES + to] = bit;
        }
      }
    }
    metric = next;
  }
  const message = new Array<number>(steps);
  let state = 0;
  for (let t = steps - 1; t >= 0; t--) {
    message[t] = input[t * STATES + state]!;
    state = from[t * STATES + state]!;
  }
  return message.slice(0, length);
}
