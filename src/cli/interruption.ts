import { constants } from "node:os";
import { DiffuseError } from "../index.js";

/** Termination requests a command-line run can get: Ctrl-C, `kill` or a service manager, a closed terminal. */
const HANDLED: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** The shell's convention for a run ended by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** The run was interrupted before its files were committed: none was written. */
export class Interrupted extends DiffuseError {
  override readonly exitCode: number;
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}: no file written`);
    this.exitCode = signalExitCode(signal);
  }
}

/**
 * One rule for a run that writes files: once interrupted, nothing is written. SIGINT, SIGTERM and SIGHUP are
 * handled alike. The first one aborts the work (`signal`, which the pipeline checks between steps) and is
 * final: every later phase calls `check()`, and files are committed only through `commit()`, which checks and
 * commits in one synchronous step, so no handler can run between the two (the earlier handler ran between
 * the pipeline's last step and the file writes, and the files were written anyway). Once committed, the run is
 * complete: a signal then ends the process with success, since everything it promised is on disk. A second
 * signal before that quits at once, after the registered cleanups (temporary files) ran.
 */
export class Interruption {
  private readonly controller = new AbortController();
  private received: NodeJS.Signals | undefined;
  private committed = false;
  private readonly cleanups = new Set<() => void>();
  private readonly waiters: (() => void)[] = [];
  private readonly handler = (signal: NodeJS.Signals) => this.onSignal(signal);

  constructor(private readonly log: (line: string) => void) {}

  /** Takes over the signals; call before anything that may take time, and `dispose()` when the run ends. */
  install(): this {
    for (const s of HANDLED) process.on(s, this.handler);
    return this;
  }

  dispose(): void {
    for (const s of HANDLED) process.off(s, this.handler);
  }

  /** Aborted at the first signal: pass it to work that can stop early. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Throws Interrupted once a signal came. */
  check(): void {
    if (this.received) throw new Interrupted(this.received);
  }

  /**
   * Runs `commit` (which must be synchronous: renaming staged files into place, printing what was written)
   * unless a signal came; from then on the run counts as complete.
   */
  commit<T>(commit: () => T): T {
    this.check();
    const result = commit();
    this.committed = true;
    return result;
  }

  /** A synchronous cleanup for a forced exit (a second signal); returns its removal. */
  onForcedExit(cleanup: () => void): () => void {
    this.cleanups.add(cleanup);
    return () => this.cleanups.delete(cleanup);
  }

  /**
   * Test hook: with DIFFUSE_TEST_PAUSE_AT=<point>, the run stops at that named point, says so on stderr and
   * waits for a signal, so a test can interrupt each phase deterministically instead of by timing;
   * <point>:stall keeps waiting after the signal too (a phase that does not notice it), for the second one.
   */
  async pausePoint(point: string): Promise<void> {
    const [name, mode] = (process.env.DIFFUSE_TEST_PAUSE_AT ?? "").split(":");
    if (name !== point) return;
    this.log(`diffuse-test: paused at ${point}`);
    // Signal handlers do not keep Node's event loop alive; this timer does, for as long as the pause lasts.
    const keepAlive = setInterval(() => {}, 1 << 30);
    if (mode === "stall") return new Promise<void>(() => {});
    await new Promise<void>((resolve) => (this.received ? resolve() : this.waiters.push(resolve)));
    clearInterval(keepAlive);
  }

  private onSignal(signal: NodeJS.Signals): void {
    if (this.committed) process.exit(0);
    if (!this.received) {
      this.received = signal;
      this.controller.abort();
      for (const w of this.waiters.splice(0)) w();
      this.say(`\ninterrupted by ${signal}: stopping, and no file will be written (send it again to quit at once)`);
      return;
    }
    for (const cleanup of this.cleanups) {
      try {
        cleanup();
      } catch {
        // Quitting regardless: a cleanup that fails must not keep the process alive.
      }
    }
    this.say(`interrupted again by ${signal}: quitting at once; no file written`);
    process.exit(signalExitCode(signal));
  }

  /** Logs after the state changed: after a SIGHUP the terminal may be gone, and a failed write changes nothing. */
  private say(line: string): void {
    try {
      this.log(line);
    } catch {
      // No terminal to tell.
    }
  }
}
