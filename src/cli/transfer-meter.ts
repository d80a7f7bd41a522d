/** Speed and time left of one file's download, measured on the bytes this run received (not those resumed from disk). */
export class TransferMeter {
  private readonly started = performance.now();
  private bytes: number;

  constructor(private readonly resumedFrom: number) {
    this.bytes = resumedFrom;
  }

  update(bytes: number): void {
    this.bytes = bytes;
  }

  /** Bytes per second so far. */
  rate(): number {
    const seconds = (performance.now() - this.started) / 1000;
    return seconds > 0 ? (this.bytes - this.resumedFrom) / seconds : 0;
  }

  speed(): string {
    return `${formatBytes(this.rate())}/s`;
  }

  eta(total: number): string {
    const rate = this.rate();
    if (rate <= 0) return "--";
    const s = Math.round((total - this.bytes) / rate);
    return s >= 3600
      ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
      : s >= 60
        ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
        : `${s}s`;
  }

  summary(total: number): string {
    const seconds = (performance.now() - this.started) / 1000;
    const resumed = this.resumedFrom > 0 ? `, resumed at ${formatBytes(this.resumedFrom)}` : "";
    return `${formatBytes(total)} in ${seconds.toFixed(1)} s (${this.speed()}${resumed})`;
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(0)} kB`;
  return `${Math.round(n)} B`;
}
