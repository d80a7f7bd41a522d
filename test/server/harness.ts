import { spawn, type ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { buildApp, type App } from "../../src/server/app.js";
import { resolveServerConfig, type ServerConfig } from "../../src/server/config.js";
import type { JobStatus } from "../../src/server/api-types.js";
import { afterAll, beforeAll } from "vitest";
import { defaultModelPath } from "../../src/default-model.js";
import { guardChild } from "../helpers/child-guard.js";
import { ref } from "../helpers/fixtures.js";

export const TINY_MODEL = ref("models/sd15-tiny");

export interface TestServer {
  app: App;
  /** http://127.0.0.1:PORT when listening, else undefined (inject only). */
  base: string;
  dataDir: string;
  close(): Promise<void>;
}

/** A temp folder removed by the returned cleanup. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A server in-process on a free port with a temp data folder (or the given one). One ORT thread: the machine's
 * cores are shared and the tiny model gains nothing from more.
 */
export async function startServer(
  overrides: Partial<ServerConfig> & { cacheDir?: string } = {},
  opts: { listen?: boolean; modelPath?: string } = {},
): Promise<TestServer> {
  const data = overrides.dataDir ? undefined : tempDir("diffuse-server-");
  const dataDir = overrides.dataDir ?? data!.path;
  const { cacheDir, ...rest } = overrides;
  const config: ServerConfig = {
    ...resolveServerConfig({
      modelPath: opts.modelPath ?? TINY_MODEL,
      dataDir,
      port: 0,
      webRoot: join(dataDir, "no-web"),
    }),
    loadOptions: { threads: 1, cacheDir },
    // An empty model store: the checkpoints clients can switch to are the started one only, unless a test gives some.
    models: { cacheDir: join(dataDir, "no-hf-cache"), home: join(dataDir, "no-home"), searchDefaults: false },
    ...rest,
  };
  const app = await buildApp(config);
  let base = "";
  if (opts.listen !== false) {
    base = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
  }
  return {
    app,
    base,
    dataDir,
    close: async () => {
      await app.close();
      data?.remove();
    },
  };
}

/**
 * A listening server on the embedded model for the enclosing describe (started before its tests, closed after them),
 * its compile cache in a temp folder, the robust watermark off: it carries each job's id, so a regenerated image
 * could not be compared pixel for pixel. Read `.server` inside the tests.
 */
export function embeddedServerWithoutWatermark(): { readonly server: TestServer } {
  let s: TestServer | undefined;
  const cache = tempDir("diffuse-cache-");
  beforeAll(async () => {
    s = await startServer(
      { cacheDir: cache.path, loadOptions: { threads: 1, cacheDir: cache.path, watermark: false } },
      { modelPath: defaultModelPath() },
    );
  });
  afterAll(async () => {
    try {
      await s?.close();
    } finally {
      cache.remove();
    }
  });
  return {
    get server() {
      if (!s) throw new Error("the server starts in beforeAll: read .server inside a test");
      return s;
    },
  };
}

export async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(`${init?.method ?? "GET"} ${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

export async function postJson<T>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as T };
}

const FINAL = new Set(["done", "failed", "cancelled"]);

/** Polls a job until it is finished. */
export async function waitForJob(
  base: string,
  id: string,
  timeoutMs = 30_000,
  until: (s: JobStatus) => boolean = (s) => FINAL.has(s.state),
): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await getJson<JobStatus>(`${base}/api/v1/jobs/${id}`);
    if (until(s)) return s;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${s.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A small solid PNG (as base64) of the given size, for init images and masks. */
export async function pngBase64(width: number, height: number, rgb: [number, number, number]): Promise<string> {
  const sharp = (await import("sharp")).default;
  const png = await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
  return png.toString("base64");
}

/** Reads server-sent events from a fetch response until `stop` says so or the stream ends. */
export async function readSse(
  res: Response,
  stop: (e: { event: string; data: unknown }) => boolean = () => false,
): Promise<{ event: string; data: unknown }[]> {
  const events: { event: string; data: unknown }[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === undefined || data === undefined) continue;
      const e = { event, data: JSON.parse(data) as unknown };
      events.push(e);
      if (stop(e)) {
        await reader.cancel();
        return events;
      }
    }
  }
  return events;
}

export interface ChildServer {
  base: string;
  child: ChildProcess;
  /** The "recovered {...}" line: what crash recovery found at start. */
  recovery: { requeued: string[]; failed: string[] };
  exited: Promise<number | null>;
  stderr: () => string;
}

/** The server in a child process (test/server/serve-entry.ts), resolved once it listens. */
export function spawnServer(dataDir: string, cacheDir: string): Promise<ChildServer> {
  const entry = fileURLToPath(new URL("./serve-entry.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", entry, dataDir, cacheDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  guardChild(child);
  let out = "";
  let err = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const listening = /^listening (\S+)$/m.exec(out);
      const recovered = /^recovered (.*)$/m.exec(out);
      if (listening && recovered)
        resolve({ base: listening[1]!, child, recovery: JSON.parse(recovered[1]!), exited, stderr: () => err });
    });
    void exited.then((code) => reject(new Error(`server exited (${code}) before listening: ${err}`)));
  });
}

/** Kills (SIGKILL) the child servers still running, so a failed assertion leaves no process behind. */
export async function killLeftovers(
  children: readonly { child: ChildProcess; exited: Promise<unknown> }[],
): Promise<void> {
  for (const c of children) {
    if (c.child.exitCode === null && c.child.signalCode === null) {
      c.child.kill("SIGKILL");
      await c.exited;
    }
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One HTTP/1.1 request written byte for byte on a socket, so the request target goes out exactly as given
 * (absolute-form `http://x/api`, `*`, `//api`, ...), which fetch and node:http would normalise or refuse.
 */
export function rawRequest(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = sendRaw(base, method, target, headers, body);
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", reject);
    socket.on("end", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      resolve({ ...parseHead(split < 0 ? text : text.slice(0, split)), body: split < 0 ? "" : text.slice(split + 4) });
    });
  });
}

/**
 * The status and headers of a request sent as rawRequest sends it, without waiting for the body: an event
 * stream's body never ends by itself, and a test that looks only at the status and headers must not wait for it.
 */
export function rawHeaders(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Omit<RawResponse, "body">> {
  return new Promise((resolve, reject) => {
    const socket = sendRaw(base, method, target, headers, body);
    let text = "";
    const done = (): boolean => {
      const split = text.indexOf("\r\n\r\n");
      if (split < 0) return false;
      socket.destroy();
      resolve(parseHead(text.slice(0, split)));
      return true;
    };
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      done();
    });
    socket.on("error", reject);
    socket.on("end", () => {
      if (!done())
        reject(new Error(`${method} ${target}: the connection closed before the headers: ${JSON.stringify(text)}`));
    });
  });
}

function sendRaw(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string>,
  body: string | undefined,
): Socket {
  const url = new URL(base);
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${headers["host"] ?? url.host}`, "Connection: close"];
  for (const [k, v] of Object.entries(headers)) if (k !== "host") lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const request = `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`;
  const socket = connect(Number(url.port), url.hostname, () => socket.write(request));
  return socket;
}

function parseHead(head: string): Omit<RawResponse, "body"> {
  const [statusLine, ...fields] = head.split("\r\n");
  const out: Record<string, string> = {};
  for (const h of fields) {
    const colon = h.indexOf(":");
    if (colon > 0) out[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1] ?? 0), headers: out };
}

export interface Route {
  /** As registered: `/api/v1/jobs/:id`, `/*`. */
  path: string;
  methods: string[];
}

/**
 * Every route of a (ready) server as fastify itself lists it, so tests over "every route" cover routes added
 * later. `printRoutes` draws a tree in which a child's path is its parent's plus its own segment.
 */
export function routesOf(app: FastifyInstance): Route[] {
  const out: Route[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const m = /^([│ ]*)[├└]── (.*) \(([A-Z, ]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    const path = (stack[depth - 1] ?? "") + m[2]!;
    stack.push(path);
    out.push({ path: path.startsWith("/") ? path : `/${path}`, methods: m[3]!.split(", ") });
  }
  return out;
}
