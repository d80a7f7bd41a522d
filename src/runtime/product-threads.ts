import { Worker } from "node:worker_threads";
import { InternalError } from "../errors.js";
import { CALL_FIELDS, type ProductCall, type ProductKernel } from "./product-simd.js";

/** Control words: the state, then a call's arguments. */
const IDLE = 0,
  WORK = 1,
  EXIT = 2,
  FAILED = 3;

/**
 * The worker: the kernel instantiated over the same shared memory, waiting on its control words (Atomics, no
 * event loop) for a call to run. A trap is reported as FAILED rather than leaving the caller waiting.
 */
const WORKER = `
const { workerData } = require("node:worker_threads");
const { bytes, memory, control } = workerData;
const run = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } }).exports.addProduct;
const words = new Int32Array(control);
for (;;) {
  Atomics.wait(words, 0, ${IDLE});
  const state = Atomics.load(words, 0);
  if (state === ${EXIT}) break;
  if (state !== ${WORK}) continue;
  let done = ${IDLE};
  try {
    run(...words.subarray(1, ${1 + CALL_FIELDS.length}));
  } catch {
    done = ${FAILED};
  }
  Atomics.store(words, 0, done);
  Atomics.notify(words, 0);
}
`;

/**
 * Runs kernel calls on several threads: the caller's and `threads - 1` workers over the kernel's shared memory,
 * each call split by rows. The products of a LoRA are a few seconds of arithmetic on one core; the split rows are
 * disjoint, so every value is computed as on one thread. Workers are started on first use and stopped by `close`.
 */
export class ProductThreads {
  private readonly workers: { worker: Worker; words: Int32Array }[] = [];

  constructor(
    private readonly kernel: ProductKernel,
    private readonly threads: number,
  ) {}

  /** Whether calls can be split here: more than one thread and a memory threads share. */
  get parallel(): boolean {
    return (
      this.threads > 1 &&
      typeof SharedArrayBuffer !== "undefined" &&
      this.kernel.memory.buffer instanceof SharedArrayBuffer
    );
  }

  /** Runs `call`, its rows (a multiple of 4) split between the threads. */
  run(call: ProductCall): void {
    const parts = this.parallel ? Math.min(this.threads, call.rows / 4) : 1;
    if (parts <= 1) {
      this.kernel.run(call);
      return;
    }
    this.start(parts - 1);
    // Rows in multiples of 4, the caller's share last.
    const share = Math.ceil(call.rows / 4 / parts) * 4;
    const slice = (start: number): ProductCall => ({
      ...call,
      w: call.w + start * call.wRow,
      a: call.a + start * call.r * 4,
      rows: Math.max(0, Math.min(share, call.rows - start)),
    });
    const busy = this.workers.slice(0, parts - 1);
    for (const [i, { words }] of busy.entries()) {
      const part = slice(i * share);
      CALL_FIELDS.forEach((f, j) => {
        words[1 + j] = part[f];
      });
      Atomics.store(words, 0, WORK);
      Atomics.notify(words, 0);
    }
    const own = slice((parts - 1) * share);
    if (own.rows > 0) this.kernel.run(own);
    let failed = false;
    for (const { words } of busy) {
      while (Atomics.load(words, 0) === WORK) Atomics.wait(words, 0, WORK);
      if (Atomics.load(words, 0) === FAILED) {
        failed = true;
        Atomics.store(words, 0, IDLE);
      }
    }
    if (failed) throw new InternalError("a product of a LoRA merge failed in a worker thread (out of its memory)");
  }

  private start(count: number): void {
    while (this.workers.length < count) {
      const words = new Int32Array(new SharedArrayBuffer(4 * (1 + CALL_FIELDS.length)));
      const worker = new Worker(WORKER, {
        eval: true,
        workerData: { bytes: this.kernel.bytes, memory: this.kernel.memory, control: words.buffer },
      });
      // Blocked in Atomics.wait between calls: it must not keep the process alive.
      worker.unref();
      this.workers.push({ worker, words });
    }
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    for (const { words } of workers) {
      Atomics.store(words, 0, EXIT);
      Atomics.notify(words, 0);
    }
    await Promise.all(workers.map(({ worker }) => worker.terminate()));
  }
}
