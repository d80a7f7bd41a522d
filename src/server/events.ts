import type { ServerResponse } from "node:http";
import { FINAL_EVENTS, type SseEvent } from "./api-types.js";

export type JobEventListener = (e: SseEvent) => void;

/**
 * Live events per job, from the queue to whoever listens (SSE streams, waiting A1111 requests). Listeners are
 * observers only: removing one (a client going away) never touches the job.
 */
export class JobEvents {
  private readonly listeners = new Map<string, Set<JobEventListener>>();
  private readonly streams = new Set<SseStream>();

  subscribe(jobId: string, listener: JobEventListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  publish(jobId: string, event: SseEvent): void {
    const set = this.listeners.get(jobId);
    if (!set) return;
    // A copy: a listener may unsubscribe (or subscribe others) while we iterate.
    for (const l of [...set]) l(event);
  }

  hasListeners(jobId: string): boolean {
    return this.listeners.has(jobId);
  }

  subscribedJobIds(): string[] {
    return [...this.listeners.keys()];
  }

  /** Opens an SSE response on a raw Node response the caller has taken over from fastify. */
  openStream(res: ServerResponse, keepAliveMs: number): SseStream {
    const stream = new SseStream(res, keepAliveMs, () => this.streams.delete(stream));
    this.streams.add(stream);
    return stream;
  }

  /** Ends every open stream, so a shutdown is not held up by clients that never hang up. */
  closeAllStreams(): void {
    for (const s of [...this.streams]) s.close();
  }
}

/** One server-sent-events response: `event:` name, JSON `data:`, an `id:` counter, comment pings when idle. */
export class SseStream {
  private nextId = 1;
  private closed = false;
  private readonly ping: NodeJS.Timeout;
  private readonly closeListeners: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    keepAliveMs: number,
    onClose: () => void,
  ) {
    this.closeListeners.push(onClose);
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      // Tells nginx-style proxies not to buffer the stream.
      "x-accel-buffering": "no",
    });
    // Lets a browser's EventSource reconnect quickly after a network blip.
    res.write("retry: 2000\n\n");
    this.ping = setInterval(() => this.write(": ping\n\n"), keepAliveMs);
    this.ping.unref();
    res.on("close", () => this.close());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeListeners.push(fn);
  }

  /** Sends one event; after a final one (done, error, cancelled) the stream ends, since nothing follows. */
  send(e: SseEvent): void {
    this.write(`id: ${this.nextId++}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
    if (FINAL_EVENTS.includes(e.event)) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ping);
    if (!this.res.writableEnded) this.res.end();
    for (const fn of this.closeListeners.splice(0)) fn();
  }

  private write(chunk: string): void {
    if (this.closed || this.res.writableEnded || this.res.destroyed) return;
    this.res.write(chunk);
  }
}
