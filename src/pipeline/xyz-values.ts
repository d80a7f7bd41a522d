import { InputError } from "../errors.js";

/**
 * The value text of an X/Y/Z plot axis, read as AUTOMATIC1111's script reads it: comma-separated, a value in double
 * quotes may hold commas (`"a, b", c`; `""` inside quotes is one quote), each value trimmed; for numeric axes a
 * value may be a range: `1-5` (every integer, both ends included), `1-10 (+2)` (a step, with its sign), `1-10 [5]`
 * (that many values evenly spaced, ends included; integers truncated, as A1111's int() of numpy's linspace).
 * Unlike Python's csv reader, a quote after the spaces that follow a comma still opens a quoted value.
 */

/** More values than any plot shows would only hold the run up: A1111's own grids rarely pass a few dozen. */
export const MAX_AXIS_VALUES = 1000;

/** The values of the text, split and trimmed (an empty text is no values). */
export function splitAxisValues(text: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  if (text.trim() === "") return out;
  while (i <= n) {
    while (i < n && text[i] === " ") i++;
    let value = "";
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          closed = true;
          i++;
          break;
        }
        value += text[i++];
      }
      if (!closed)
        throw new InputError(`${where}: a quoted value is not closed: add the closing " (in ${JSON.stringify(text)})`);
      // Text between the closing quote and the next comma belongs to the value, as Python's csv reader keeps it.
      while (i < n && text[i] !== "," && text[i] !== "\n") value += text[i++];
    } else {
      while (i < n && text[i] !== "," && text[i] !== "\n") value += text[i++];
    }
    out.push(value.trim());
    i++;
  }
  return out;
}

const INT = String.raw`([+-]?\s*\d+)`;
const FLOAT = String.raw`([+-]?\s*\d+(?:\.\d*)?)`;
const STEP_RANGE_INT = new RegExp(String.raw`^\s*${INT}\s*-\s*${INT}(?:\s*\(([+-]\d+)\s*\))?\s*$`);
const COUNT_RANGE_INT = new RegExp(String.raw`^\s*${INT}\s*-\s*${INT}(?:\s*\[(\d+)\s*\])?\s*$`);
const STEP_RANGE_FLOAT = new RegExp(String.raw`^\s*${FLOAT}\s*-\s*${FLOAT}(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*$`);
const COUNT_RANGE_FLOAT = new RegExp(String.raw`^\s*${FLOAT}\s*-\s*${FLOAT}(?:\s*\[(\d+)\s*\])?\s*$`);

const num = (s: string) => Number(s.replace(/\s+/g, ""));

/** A number as written (no range), or an InputError naming the axis and the value. */
function plainNumber(value: string, integer: boolean, where: string): number {
  const v = value.trim();
  const n = Number(v);
  if (v === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)))
    throw new InputError(
      `${where}: ${JSON.stringify(value)} is not ${integer ? "an integer" : "a number"}; write values such as ` +
        `${integer ? "1, 2, 3 or a range 1-5, 1-10 (+2), 1-10 [5]" : "3, 5.5, 7 or a range 1-2 (+0.5), 1-10 [4]"}`,
    );
  return n;
}

function guardCount(count: number, value: string, where: string): void {
  if (count > MAX_AXIS_VALUES)
    throw new InputError(`${where}: the range ${JSON.stringify(value)} gives ${count} values, over ${MAX_AXIS_VALUES}`);
}

/** numpy's linspace: `count` values from start to end, both included (one value: start). */
function linspace(start: number, end: number, count: number): number[] {
  if (count === 1) return [start];
  return Array.from({ length: count }, (_, i) => (i === count - 1 ? end : start + ((end - start) * i) / (count - 1)));
}

function countOf(text: string, value: string, where: string): number {
  const count = Number(text);
  if (count < 1)
    throw new InputError(`${where}: the range ${JSON.stringify(value)} asks for no values: use [1] or more`);
  guardCount(count, value, where);
  return count;
}

/** Integer values: plain integers and ranges, in order. */
export function integerValues(values: readonly string[], where: string): number[] {
  const out: number[] = [];
  for (const value of values) {
    const m = STEP_RANGE_INT.exec(value);
    const c = m ? null : COUNT_RANGE_INT.exec(value);
    if (m) {
      const start = num(m[1]!);
      const end = num(m[2]!);
      const step = m[3] === undefined ? 1 : num(m[3]);
      if (step === 0) throw new InputError(`${where}: the range ${JSON.stringify(value)} has a step of 0`);
      // Python's range(start, end + 1, step): the end is included when the steps land on it.
      const stop = end + 1;
      const count =
        step > 0 ? Math.max(0, Math.ceil((stop - start) / step)) : Math.max(0, Math.ceil((start - stop) / -step));
      if (count === 0)
        throw new InputError(
          `${where}: the range ${JSON.stringify(value)} is empty: a step of ${step} never goes from ${start} to ${end}`,
        );
      guardCount(count, value, where);
      for (let i = 0; i < count; i++) out.push(start + i * step);
    } else if (c) {
      const count = countOf(c[3] ?? "1", value, where);
      out.push(...linspace(num(c[1]!), num(c[2]!), count).map(Math.trunc));
    } else {
      out.push(plainNumber(value, true, where));
    }
  }
  return out;
}

/** Decimal values: plain numbers and ranges, in order. */
export function floatValues(values: readonly string[], where: string): number[] {
  const out: number[] = [];
  for (const value of values) {
    const m = STEP_RANGE_FLOAT.exec(value);
    const c = m ? null : COUNT_RANGE_FLOAT.exec(value);
    if (m) {
      const start = num(m[1]!);
      const end = num(m[2]!);
      const step = m[3] === undefined ? 1 : num(m[3]);
      if (step === 0) throw new InputError(`${where}: the range ${JSON.stringify(value)} has a step of 0`);
      // numpy's arange(start, end + step, step), with its length rule; values rounded to shed binary noise.
      const count = Math.max(0, Math.ceil((end + step - start) / step));
      if (count === 0)
        throw new InputError(
          `${where}: the range ${JSON.stringify(value)} is empty: a step of ${step} never goes from ${start} to ${end}`,
        );
      guardCount(count, value, where);
      for (let i = 0; i < count; i++) out.push(Number((start + i * step).toFixed(8)));
    } else if (c) {
      const count = countOf(c[3] ?? "1", value, where);
      out.push(...linspace(num(c[1]!), num(c[2]!), count).map((v) => Number(v.toFixed(8))));
    } else {
      out.push(plainNumber(value, false, where));
    }
  }
  return out;
}

/** Every order of the values (A1111's Prompt order axis), in itertools.permutations' order. */
export function permutations<T>(values: readonly T[]): T[][] {
  if (values.length <= 1) return [[...values]];
  const out: T[][] = [];
  values.forEach((v, i) => {
    for (const rest of permutations([...values.slice(0, i), ...values.slice(i + 1)])) out.push([v, ...rest]);
  });
  return out;
}
