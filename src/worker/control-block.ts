/**
 * The memory one generation shares between the host and the worker thread that runs it: the cancel flag, the
 * batch to skip (A1111's skip) and the live progress. The thread reads the flag synchronously after every step, so a cancel takes effect at the next
 * step boundary even though the thread's event loop only turns after the next network run was scheduled (a
 * message alone would let one more step start); the host reads the progress without waiting for a message.
 */
const CANCEL = 0;
const STEP = 1;
const STEPS = 2;
const BATCH = 3;
const BATCHES = 4;
/** 1 + the batch whose remaining steps are skipped; 0: none. */
const SKIP = 5;
const SLOTS = 6;

export interface LiveProgress {
  /** 1-based step within the current batch. */
  step: number;
  steps: number;
  /** 0-based batch index (of batchCount) and how many there are. */
  batch: number;
  batches: number;
}

export class ControlBlock {
  private readonly slots: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT)) {
    this.slots = new Int32Array(buffer);
  }

  cancel(): void {
    Atomics.store(this.slots, CANCEL, 1);
  }

  get cancelled(): boolean {
    return Atomics.load(this.slots, CANCEL) === 1;
  }

  /** Ends the batch running now after its current step (before the first step report: the first batch). */
  skipCurrent(): void {
    Atomics.store(this.slots, SKIP, Atomics.load(this.slots, BATCH) + 1);
  }

  /** Whether batch `batch` is to stop early; read by the thread after each step. */
  skips(batch: number): boolean {
    return Atomics.load(this.slots, SKIP) === batch + 1;
  }

  /** Whether a skip was asked for the batch running now and has not yet taken effect (A1111's state.skipped). */
  get skipPending(): boolean {
    return this.skips(Atomics.load(this.slots, BATCH));
  }

  /** Written by the thread after each step, before it looks at the cancel flag. */
  report(p: LiveProgress): void {
    Atomics.store(this.slots, STEP, p.step);
    Atomics.store(this.slots, STEPS, p.steps);
    Atomics.store(this.slots, BATCH, p.batch);
    Atomics.store(this.slots, BATCHES, p.batches);
  }

  /** The last step the thread finished; null before the first. */
  progress(): LiveProgress | null {
    const steps = Atomics.load(this.slots, STEPS);
    if (steps === 0) return null;
    return {
      step: Atomics.load(this.slots, STEP),
      steps,
      batch: Atomics.load(this.slots, BATCH),
      batches: Atomics.load(this.slots, BATCHES),
    };
  }
}
