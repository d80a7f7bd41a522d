import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * A local stand-in for the Hugging Face Hub, for the routes diffuse uses, answering as the Hub does:
 *  - GET /api/models/{repo}/revision/{rev}: model information (sha, siblings, cardData, tags, gated);
 *    404 with X-Error-Code RepoNotFound / RevisionNotFound.
 *  - GET /{repo}/resolve/{rev}/{file}: an LFS file is a 302 to the CDN carrying X-Linked-Etag (the sha256),
 *    X-Linked-Size and X-Repo-Commit, with the ETag of the pointer; a small file is served directly with its git
 *    blob sha1 as ETag; 401 GatedRepo for a gated repository without the token; 404 EntryNotFound.
 *  - GET /cdn/{sha256}: the bytes, with Range requests (206, Content-Range) and an ETag of its own, as a CDN.
 * Files are served from where they are on disk (the reference fixtures, read in place). Content bytes sent are
 * counted per file, and a file can be made to stall or to break after a fraction, or to arrive damaged.
 */

export interface FakeRepo {
  readonly id: string;
  /** Path in the repository -> file on disk (or bytes). */
  readonly files: Readonly<Record<string, string | Buffer>>;
  readonly gated?: false | "auto" | "manual";
  readonly cardData?: Record<string, unknown>;
  readonly tags?: readonly string[];
}

interface FakeFile {
  readonly repo: string;
  readonly path: string;
  readonly bytes: Buffer;
  readonly sha256: string;
  readonly gitSha1: string;
  readonly lfs: boolean;
}

export class FakeHub {
  readonly url: string;
  /** Content bytes sent per "repo/file" (resolve and CDN together). */
  readonly served = new Map<string, number>();
  /** Every request line, in order. */
  readonly requests: string[] = [];
  /** "repo/file" -> fraction after which the transfer stops sending and hangs until the client goes away. */
  readonly stallAfter = new Map<string, number>();
  /** "repo/file" -> fraction after which the connection is cut. */
  readonly dropAfter = new Map<string, number>();
  /** "repo/file" whose bytes arrive with one byte changed (the announced sha256 stays the true one). */
  readonly corrupt = new Set<string>();
  /** "repo/file" -> a size to announce instead of the real one (a file too large for the disk). */
  readonly announcedSize = new Map<string, number>();

  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    port: number,
    private readonly repos: Map<string, { repo: FakeRepo; commit: string; files: Map<string, FakeFile> }>,
    private readonly token: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  /** Starts on a free port of 127.0.0.1. `token` is the one gated repositories accept. */
  static async start(repos: readonly FakeRepo[], token = "hf_fake_token"): Promise<FakeHub> {
    const table = new Map<string, { repo: FakeRepo; commit: string; files: Map<string, FakeFile> }>();
    for (const repo of repos) {
      const files = new Map<string, FakeFile>();
      for (const [path, src] of Object.entries(repo.files)) {
        const bytes = typeof src === "string" ? readFileSync(src) : src;
        files.set(path, {
          repo: repo.id,
          path,
          bytes,
          sha256: createHash("sha256").update(bytes).digest("hex"),
          gitSha1: createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex"),
          // The Hub stores weights and anything large in LFS; configs and tokenizer text in git.
          lfs: /\.(safetensors|bin|ckpt|onnx|msgpack|h5)$/.test(path) || bytes.length > 100_000,
        });
      }
      const commit = createHash("sha1")
        .update(repo.id)
        .update([...files.values()].map((f) => f.path + f.sha256).join())
        .digest("hex");
      table.set(repo.id, { repo, commit, files });
    }
    let hub: FakeHub | undefined;
    const server = createServer((req, res) => hub!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    hub = new FakeHub(server, port, table, token);
    return hub;
  }

  commitOf(repo: string): string {
    return this.repos.get(repo)!.commit;
  }

  sha256Of(repo: string, path: string): string {
    return this.repos.get(repo)!.files.get(path)!.sha256;
  }

  sizeOf(repo: string, path: string): number {
    return this.repos.get(repo)!.files.get(path)!.bytes.length;
  }

  bytesServed(repo: string, path: string): number {
    return this.served.get(`${repo}/${path}`) ?? 0;
  }

  resetCounts(): void {
    this.served.clear();
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method} ${req.url} ${req.headers.range ?? ""}`.trim());
    const url = new URL(req.url ?? "/", this.url);
    const path = url.pathname.split("/").map(decodeURIComponent);
    if (path[1] === "api" && path[2] === "models") return this.info(path.slice(3), res);
    if (path[1] === "cdn") return this.cdn(path[2]!, url.searchParams.get("key") ?? "", req, res);
    const at = path.indexOf("resolve");
    if (at === 3) return this.resolve(`${path[1]}/${path[2]}`, path[4]!, path.slice(5).join("/"), req, res);
    json(res, 404, { error: "not found" });
  }

  private info(parts: string[], res: ServerResponse): void {
    // {owner}/{name}/revision/{rev}
    const id = `${parts[0]}/${parts[1]}`;
    const r = this.repos.get(id);
    if (!r) return json(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
    const rev = parts.slice(3).join("/");
    if (rev !== "main" && rev !== "HEAD" && rev !== r.commit)
      return json(res, 404, { error: `Invalid rev id: ${rev}` }, { "X-Error-Code": "RevisionNotFound" });
    json(res, 200, {
      _id: `id-${id}`,
      id,
      sha: r.commit,
      private: false,
      gated: r.repo.gated ?? false,
      downloads: 0,
      likes: 0,
      lastModified: "2024-01-01T00:00:00.000Z",
      tags: r.repo.tags ?? [],
      ...(r.repo.cardData ? { cardData: r.repo.cardData } : {}),
      siblings: [...r.files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private resolve(id: string, rev: string, file: string, req: IncomingMessage, res: ServerResponse): void {
    const r = this.repos.get(id);
    if (!r) return json(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
    if (rev !== "main" && rev !== r.commit)
      return json(res, 404, { error: `Invalid rev id: ${rev}` }, { "X-Error-Code": "RevisionNotFound" });
    if (
      r.repo.gated &&
      req.headers.authorization?.startsWith("Bearer ") &&
      req.headers.authorization !== `Bearer ${this.token}`
    ) {
      // A valid token of an account that has not been granted access.
      return json(
        res,
        403,
        {
          error: `Access to model ${id} is restricted and you are not in the authorized list. Visit ${this.url}/${id} to ask for access.`,
        },
        { "X-Error-Code": "GatedRepo" },
      );
    }
    if (r.repo.gated && req.headers.authorization !== `Bearer ${this.token}`) {
      return json(
        res,
        401,
        {
          error: `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        },
        { "X-Error-Code": "GatedRepo" },
      );
    }
    const f = r.files.get(file);
    if (!f) return json(res, 404, { error: "Entry not found" }, { "X-Error-Code": "EntryNotFound" });
    const key = `${id}/${file}`;
    if (f.lfs) {
      res.writeHead(302, {
        Location: `/cdn/${f.sha256}?key=${encodeURIComponent(key)}`,
        "X-Linked-Etag": `"${f.sha256}"`,
        "X-Linked-Size": String(this.announcedSize.get(key) ?? f.bytes.length),
        "X-Repo-Commit": r.commit,
        ETag: `"${createHash("sha1").update(`pointer ${f.sha256}`).digest("hex")}"`,
      });
      res.end();
      return;
    }
    this.send(f, key, req, res, { ETag: `"${f.gitSha1}"`, "X-Repo-Commit": r.commit });
  }

  private cdn(sha: string, key: string, req: IncomingMessage, res: ServerResponse): void {
    for (const r of this.repos.values()) {
      for (const f of r.files.values()) {
        // The CDN's own ETag is not the sha256: the client must take the Hub's X-Linked-Etag from the redirect.
        if (f.sha256 === sha && `${f.repo}/${f.path}` === key)
          return this.send(f, key, req, res, { ETag: `"cdn-${sha.slice(0, 16)}"` });
      }
    }
    res.writeHead(404).end();
  }

  private send(
    f: FakeFile,
    key: string,
    req: IncomingMessage,
    res: ServerResponse,
    headers: Record<string, string>,
  ): void {
    const announced = this.announcedSize.get(key) ?? f.bytes.length;
    let bytes = f.bytes;
    if (this.corrupt.has(key)) {
      bytes = Buffer.from(bytes);
      bytes[bytes.length >> 1] ^= 0xff;
    }
    let start = 0,
      end = announced - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ""));
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), announced - 1) : announced - 1;
      if (start >= announced) {
        res.writeHead(416, { "Content-Range": `bytes */${announced}` }).end();
        return;
      }
    }
    const body = bytes.subarray(start, Math.min(end + 1, bytes.length));
    res.writeHead(range ? 206 : 200, {
      ...headers,
      "Accept-Ranges": "bytes",
      "Content-Type": "application/octet-stream",
      "Content-Length": String(end - start + 1),
      ...(range ? { "Content-Range": `bytes ${start}-${end}/${announced}` } : {}),
    });
    if (req.method === "HEAD") return void res.end();
    const count = (n: number) => this.served.set(key, (this.served.get(key) ?? 0) + n);
    const stall = this.stallAfter.get(key),
      drop = this.dropAfter.get(key);
    const cut = stall ?? drop;
    if (cut !== undefined && body.length > 1) {
      const n = Math.max(0, Math.floor(f.bytes.length * cut) - start);
      const head = body.subarray(0, n);
      count(head.length);
      res.write(head, () => {
        // Closed the way a dropped connection looks to a client (end of stream before Content-Length), after the
        // bytes sent so far; a reset could lose bytes still in flight.
        if (drop !== undefined) res.socket?.end();
        // A stall sends nothing more; the socket closes when the client goes away or the hub closes.
      });
      return;
    }
    count(body.length);
    res.end(body);
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, "Content-Type": "application/json" }).end(JSON.stringify(body));
}

/** The files of a folder on disk as repository paths -> disk paths (one level of subfolders, as a diffusers folder has). */
export function folderFiles(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = `${d}/${name}`;
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(p).isDirectory()) walk(p, r);
      else out[prefix ? `${prefix}/${r}` : r] = p;
    }
  };
  walk(dir, "");
  return out;
}
