import { InputError } from "../errors.js";

/** An integer from min to max, or an InputError naming the parameter, the value and `hint` (how to fix it). */
export function checkedInteger(name: string, value: unknown, min: number, max: number, hint: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InputError(`${name} ${JSON.stringify(value)} is invalid: ${hint}`);
  }
  return value;
}

/** A finite number from min to max, or an InputError naming the parameter, the value and `hint`. */
export function checkedNumber(name: string, value: unknown, min: number, max: number, hint: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new InputError(`${name} ${JSON.stringify(value)} is invalid: ${hint}`);
  }
  return value;
}
