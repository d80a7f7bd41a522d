import { CheckpointError, UnsafePickleError } from "../errors.js";

/**
 * Python's pickle format read as data. Pickle is a small stack language whose GLOBAL, REDUCE, BUILD, INST, OBJ and
 * NEWOBJ opcodes import and call arbitrary Python; here every opcode is interpreted by a stack machine that builds
 * plain values (numbers, strings, bytes, lists, tuples, dicts) and hands the few object-building steps to a
 * policy (`PickleHooks`), which allows what a tensor dictionary needs and refuses the rest by name. Nothing is ever
 * imported, called or executed. Only the opcodes of protocols 2 to 5 that dictionaries of tensors use are known;
 * any other stops the reading with its name.
 */

/** A tuple (immutable in Python; a list is a plain array here). */
export class PickleTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** A global (module.name) the policy allowed; what it stands for is the policy's business. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** The object-building steps, decided by the caller: each returns a value or throws UnsafePickleError. */
export interface PickleHooks {
  /** GLOBAL / STACK_GLOBAL: the global if allowed. */
  global(module: string, name: string): PickleGlobal;
  /** REDUCE: `callable(*args)` for an allowed callable. */
  call(callable: unknown, args: readonly unknown[]): unknown;
  /** BINPERSID: what a persistent id stands for (torch: a storage). */
  persistent(id: unknown): unknown;
  /** BUILD: `target.__setstate__(state)`; returns the target. */
  build(target: unknown, state: unknown): unknown;
}

export interface PickleLimits {
  /** Opcodes read before giving up (a pickle of a state dict uses about 20 per tensor). */
  readonly opcodes: number;
  /** Memo entries (about one per value). */
  readonly memo: number;
  /** Values on the stack at once. */
  readonly stack: number;
  /** MARKs open at once (a state dict nests 2 to 4). */
  readonly marks: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  opcodes: 50_000_000,
  memo: 5_000_000,
  stack: 5_000_000,
  marks: 100,
};

/** Opcode names, for messages about the ones refused or unknown. */
const OPCODE_NAMES: Readonly<Record<number, string>> = {
  40: "MARK",
  46: "STOP",
  48: "POP",
  49: "POP_MARK",
  50: "DUP",
  70: "FLOAT",
  73: "INT",
  74: "BININT",
  75: "BININT1",
  76: "LONG",
  77: "BININT2",
  78: "NONE",
  80: "PERSID",
  81: "BINPERSID",
  82: "REDUCE",
  83: "STRING",
  84: "BINSTRING",
  85: "SHORT_BINSTRING",
  86: "UNICODE",
  88: "BINUNICODE",
  97: "APPEND",
  98: "BUILD",
  99: "GLOBAL",
  100: "DICT",
  125: "EMPTY_DICT",
  101: "APPENDS",
  103: "GET",
  104: "BINGET",
  105: "INST",
  106: "LONG_BINGET",
  108: "LIST",
  93: "EMPTY_LIST",
  111: "OBJ",
  112: "PUT",
  113: "BINPUT",
  114: "LONG_BINPUT",
  115: "SETITEM",
  116: "TUPLE",
  41: "EMPTY_TUPLE",
  117: "SETITEMS",
  71: "BINFLOAT",
  128: "PROTO",
  129: "NEWOBJ",
  130: "EXT1",
  131: "EXT2",
  132: "EXT4",
  133: "TUPLE1",
  134: "TUPLE2",
  135: "TUPLE3",
  136: "NEWTRUE",
  137: "NEWFALSE",
  138: "LONG1",
  139: "LONG4",
  66: "BINBYTES",
  67: "SHORT_BINBYTES",
  140: "SHORT_BINUNICODE",
  141: "BINUNICODE8",
  142: "BINBYTES8",
  143: "EMPTY_SET",
  144: "ADDITEMS",
  145: "FROZENSET",
  146: "NEWOBJ_EX",
  147: "STACK_GLOBAL",
  148: "MEMOIZE",
  149: "FRAME",
  150: "BYTEARRAY8",
  151: "NEXT_BUFFER",
  152: "READONLY_BUFFER",
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads one pickle from `bytes` (which must end at its STOP, or hold more after it when `trailing` allows) and
 * returns its value and the offset after STOP. `origin` names the file in messages.
 */
export function readPickle(
  bytes: Uint8Array,
  hooks: PickleHooks,
  origin: string,
  limits: PickleLimits = DEFAULT_PICKLE_LIMITS,
  start = 0,
): { value: unknown; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let ops = 0;
  let opAt = start;

  const fail = (what: string): never => {
    throw new CheckpointError(`${origin}: pickle opcode at byte ${opAt}: ${what}; the file is corrupt or not a pickle`);
  };
  const need = (n: number): void => {
    if (n > bytes.length - pos)
      fail(`needs ${n} bytes but only ${bytes.length - pos} remain (the pickle is cut short)`);
  };
  const u8 = () => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) fail(`a length of ${v} bytes, past the end of the ${bytes.length}-byte pickle`);
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const b = bytes.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const text = (n: number): string => {
    const b = take(n);
    try {
      return utf8.decode(b);
    } catch {
      return fail("a string that is not UTF-8");
    }
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 1024) fail("a text argument without its end of line");
    const s = Buffer.from(bytes.subarray(pos, end)).toString("latin1");
    pos = end + 1;
    return s;
  };
  const push = (v: unknown): void => {
    if (stack.length >= limits.stack) fail(`more than ${limits.stack} values on the stack`);
    stack.push(v);
  };
  const pop = (): unknown => {
    const floor = marks.length ? marks[marks.length - 1]! : 0;
    if (stack.length <= floor) fail("pops an empty stack");
    return stack.pop();
  };
  const top = (): unknown => {
    const floor = marks.length ? marks[marks.length - 1]! : 0;
    if (stack.length <= floor) fail("reads an empty stack");
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail("no MARK to pop to");
    return stack.splice(m!);
  };
  const put = (index: number): void => {
    if (!memo.has(index) && memo.size >= limits.memo) fail(`more than ${limits.memo} memo entries`);
    memo.set(index, top());
  };
  const get = (index: number): void => {
    if (!memo.has(index)) fail(`memo entry ${index} was never stored`);
    push(memo.get(index));
  };
  const dict = (target: unknown, name: string): Map<unknown, unknown> => {
    if (!(target instanceof Map)) fail(`${name} on a ${describe(target)}, not a dict`);
    return target as Map<unknown, unknown>;
  };
  const list = (target: unknown, name: string): unknown[] => {
    if (!Array.isArray(target)) fail(`${name} on a ${describe(target)}, not a list`);
    return target as unknown[];
  };
  const setItems = (target: Map<unknown, unknown>, items: readonly unknown[]): void => {
    if (items.length % 2) fail("SETITEMS with an odd number of values");
    for (let i = 0; i < items.length; i += 2) target.set(key(items[i], fail), items[i + 1]);
  };
  const refuse = (name: string, what: string): never => {
    throw new UnsafePickleError(
      `${origin}: the pickle uses ${what} at byte ${opAt}, which a dictionary of tensors never needs; it could run ` +
        "code if unpickled, so it is refused (nothing was executed). If the file is yours, re-save it as a plain " +
        "state dict, or convert it to .safetensors in a trusted Python environment",
      name,
    );
  };

  for (;;) {
    if (++ops > limits.opcodes) fail(`more than ${limits.opcodes} opcodes`);
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("a pickle protocol above 5");
        break;
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: // STOP
        if (marks.length) fail("STOP with a MARK still open");
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack, not 1`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        if (marks.length >= limits.marks) fail(`more than ${limits.marks} nested MARKs`);
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        need(4);
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: {
        // LONG1: a little-endian two's-complement integer of n bytes
        const n = u8();
        if (n > 16) fail(`a ${n}-byte integer`);
        push(longValue(take(n)));
        break;
      }
      case 0x47: // BINFLOAT: big-endian double
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(text(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        push(Buffer.from(take(u32())).toString("latin1"));
        break;
      case 0x55: // SHORT_BINSTRING
        push(Buffer.from(take(u8())).toString("latin1"));
        break;
      case 0x42: // BINBYTES
        push(take(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()));
        break;
      case 0x8e: // BINBYTES8
        push(take(u64()));
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PickleTuple([]));
        break;
      case 0x85: // TUPLE1
        push(new PickleTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(new PickleTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(new PickleTuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(new PickleTuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        list(top(), "APPEND").push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        list(top(), "APPENDS").push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        dict(top(), "SETITEM").set(key(k, fail), v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(dict(top(), "SETITEMS"), items);
        break;
      }
      case 0x71: // BINPUT
        put(u8());
        break;
      case 0x72: // LONG_BINPUT
        put(u32());
        break;
      case 0x94: // MEMOIZE
        put(memo.size);
        break;
      case 0x68: // BINGET
        get(u8());
        break;
      case 0x6a: // LONG_BINGET
        get(u32());
        break;
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line();
        push(hooks.global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL without two strings");
        push(hooks.global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        if (!(args instanceof PickleTuple)) fail(`REDUCE with ${describe(args)} for arguments, not a tuple`);
        push(hooks.call(callable, (args as PickleTuple).items));
        break;
      }
      case 0x51: // BINPERSID
        push(hooks.persistent(pop()));
        break;
      case 0x62: {
        // BUILD
        const state = pop();
        push(hooks.build(pop(), state));
        break;
      }
      case 0x69: {
        // INST "module\nname\n": imports and calls a class; named so the message says what it wanted
        const module = line();
        const name = line();
        return refuse(`INST ${module}.${name}`, `INST ${module}.${name}`);
      }
      case 0x6f: {
        // OBJ: calls the class under the MARK
        const items = marks.length ? stack.slice(marks[marks.length - 1]) : [];
        const cls = items[0] instanceof PickleGlobal ? (items[0] as PickleGlobal).qualified : describe(items[0]);
        return refuse(`OBJ ${cls}`, `OBJ on ${cls}`);
      }
      case 0x81: // NEWOBJ
      case 0x92: {
        // NEWOBJ_EX
        const cls = stack[stack.length - (op === 0x81 ? 2 : 3)];
        const name = cls instanceof PickleGlobal ? cls.qualified : describe(cls);
        return refuse(`${OPCODE_NAMES[op]} ${name}`, `${OPCODE_NAMES[op]} on ${name}`);
      }
      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4: globals from the copyreg extension registry
        return refuse(OPCODE_NAMES[op]!, `${OPCODE_NAMES[op]} (a global from the extension registry)`);
      case 0x50: // PERSID (text persistent id, protocol 0)
        return refuse("PERSID", "PERSID (a text persistent id)");
      default: {
        const name = OPCODE_NAMES[op];
        if (name) fail(`opcode ${name} is not one a dictionary of tensors uses`);
        fail(`unknown opcode 0x${op.toString(16).padStart(2, "0")}`);
      }
    }
  }
}

/**
 * A dict key: strings and numbers as Python compares them, and an allowed global by its dotted name (a training
 * checkpoint keys callback states by class); anything else is not a state dict's key.
 */
function key(k: unknown, fail: (what: string) => never): string | number {
  if (typeof k === "string" || typeof k === "number") return k;
  if (k instanceof PickleGlobal) return k.qualified;
  if (typeof k === "bigint" && k >= BigInt(Number.MIN_SAFE_INTEGER) && k <= BigInt(Number.MAX_SAFE_INTEGER))
    return Number(k);
  return fail(`a dict key that is a ${describe(k)}, not a string or number`);
}

function longValue(b: Uint8Array): number | bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b.length && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** What a value is, for messages. */
export function describe(v: unknown): string {
  if (v === null) return "None";
  if (v === undefined) return "nothing";
  if (v instanceof PickleTuple) return "tuple";
  if (v instanceof PickleGlobal) return v.qualified;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "list";
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}
