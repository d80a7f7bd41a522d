import { CheckpointError, DiffuseError, InputError, InternalError, UnsupportedModelError } from "../errors.js";
import { GenerationAborted } from "../pipeline/generation-aborted.js";
import { PolicyRefusal } from "../responsible/prompt-policy.js";

/** An error as it crosses from the worker thread: its class by name, and its own fields. */
export interface TransportedError {
  className: string;
  message: string;
  stack: string | undefined;
  /** Own fields (a PolicyRefusal's match): whatever structured clone can carry. */
  fields: Record<string, unknown>;
}

/**
 * The error classes the host rebuilds as themselves, so a caller tells them apart exactly as it would in-process
 * (`instanceof InputError`, a cancel's GenerationAborted, a refused prompt). Anything else arrives as a plain
 * Error with the original class name, message and stack: a bug, reported as one.
 */
const KNOWN: Record<string, { prototype: Error }> = {
  DiffuseError,
  CheckpointError,
  UnsupportedModelError,
  InputError,
  InternalError,
  GenerationAborted,
  PolicyRefusal,
};

export function transportError(e: unknown): TransportedError {
  if (!(e instanceof Error)) return { className: "Error", message: String(e), stack: undefined, fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === "message" || k === "stack" || k === "name") continue;
    try {
      fields[k] = structuredClone(v);
    } catch {
      // A field that cannot cross (a function, a handle) is left behind; the message says what happened.
    }
  }
  const className = Object.hasOwn(KNOWN, e.constructor.name) ? e.constructor.name : e.name;
  return { className, message: e.message, stack: e.stack, fields };
}

export function restoreError(t: TransportedError): Error {
  const known = Object.hasOwn(KNOWN, t.className) ? KNOWN[t.className] : undefined;
  if (!known) {
    const e = new Error(t.message);
    e.name = t.className;
    if (t.stack) e.stack = t.stack;
    return Object.assign(e, t.fields);
  }
  // Rebuilt without running the constructor (a PolicyRefusal's takes a match, not a message): same prototype,
  // same fields, the thread's stack.
  const e = Object.create(known.prototype) as Error;
  Object.defineProperty(e, "message", { value: t.message, writable: true, configurable: true });
  Object.defineProperty(e, "stack", { value: t.stack, writable: true, configurable: true });
  Object.defineProperty(e, "name", { value: t.className, writable: true, configurable: true });
  return Object.assign(e, t.fields);
}
