/**
 * Leases on one shared state (the LoRAs merged into a pipeline's networks): any number of holders may use it in
 * the same state at once; a request for another state waits until the current holders are done, then switches it
 * (one switch at a time) and holds it. Generations that ask for the same LoRAs run side by side; one that asks for
 * others waits rather than have its networks changed under a running one.
 */
export class StateLease {
  private state: string | undefined;
  private holders = 0;
  private switching: Promise<void> | undefined;
  private idle: { promise: Promise<void>; resolve: () => void } | undefined;

  /** The state the holders share (undefined before the first switch, or after one failed). */
  get current(): string | undefined {
    return this.state;
  }

  /**
   * Holds the state `key`, switching to it with `change` first if need be; returns the release. A failed change
   * leaves the state unknown, so that the next request switches again, and throws to its own caller only.
   */
  async acquire(key: string, change: () => Promise<void>): Promise<() => void> {
    for (;;) {
      if (this.switching) {
        await this.switching;
        continue;
      }
      if (this.state === key) {
        this.holders++;
        let released = false;
        return () => {
          if (released) return;
          released = true;
          if (--this.holders === 0) this.idle?.resolve();
        };
      }
      if (this.holders > 0) {
        this.idle ??= withResolvers();
        await this.idle.promise;
        this.idle = undefined;
        continue;
      }
      const run = (async () => {
        this.state = undefined;
        await change();
        this.state = key;
      })();
      this.switching = run
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => (this.switching = undefined));
      await run;
    }
  }
}

function withResolvers(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
