/**
 * No timing signal in the token check, tested by its mechanism rather than by a clock: every presented token,
 * right or wrong, of any length and sharing any prefix with the real one, goes through the same calls: both sides
 * hashed with SHA-256, then one constant-time comparison of the two 32-byte digests. A comparison that stopped at
 * the first differing character, or returned early on a length mismatch, would leak how much of a guess was right.
 */
import type { BinaryLike } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startServer, tempDir, type TestServer } from "./harness.js";

const log = vi.hoisted(() => ({ calls: [] as string[], compared: [] as [Buffer, Buffer][] }));

vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  const createHash = (algorithm: string) => {
    log.calls.push(`createHash ${algorithm}`);
    return real.createHash(algorithm);
  };
  const timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    log.calls.push(`timingSafeEqual ${a.byteLength} ${b.byteLength}`);
    log.compared.push([
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ]);
    return real.timingSafeEqual(a, b);
  };
  return { ...real, default: { ...real, createHash, timingSafeEqual }, createHash, timingSafeEqual };
});

const { createHash: realHash } = await vi.importActual<typeof import("node:crypto")>("node:crypto");
const sha256 = (s: BinaryLike) => realHash("sha256").update(s).digest();

const TOKEN = "s3cret-token-for-tests";

describe("the token comparison", () => {
  let s: TestServer;
  const notAModel = tempDir("diffuse-not-a-model-");
  beforeAll(async () => {
    s = await startServer({ token: TOKEN }, { modelPath: notAModel.path, listen: false });
  });
  afterAll(async () => {
    await s?.close();
    notAModel.remove();
  });

  /** The crypto calls one request makes, and its status. */
  async function attempt(
    presented: string,
    via: "header" | "query",
  ): Promise<{ status: number; calls: string[]; compared: [Buffer, Buffer][] }> {
    log.calls.length = 0;
    log.compared.length = 0;
    const r = await s.app.fastify.inject(
      via === "header"
        ? { method: "GET", url: "/api/v1/samplers", headers: { authorization: `Bearer ${presented}` } }
        : { method: "GET", url: `/api/v1/samplers?access_token=${encodeURIComponent(presented)}` },
    );
    return { status: r.statusCode, calls: [...log.calls], compared: [...log.compared] };
  }

  const wrong = [
    "x",
    "s",
    "s3cret",
    TOKEN.slice(0, -1),
    `${TOKEN.slice(0, -1)}X`,
    `X${TOKEN.slice(1)}`,
    `${TOKEN}x`,
    TOKEN.toUpperCase(),
    "a".repeat(TOKEN.length),
    "a".repeat(32),
    "a".repeat(10_000),
    "ü€😀-non-ascii",
  ];

  it("hashes both sides and compares the digests in constant time, the same calls for every wrong token, whatever its length or prefix", async () => {
    for (const via of ["header", "query"] as const) {
      const seen = new Set<string>();
      for (const guess of wrong) {
        const r = await attempt(guess, via);
        expect(r.status, `${via} ${guess.slice(0, 30)}`).toBe(401);
        seen.add(JSON.stringify(r.calls));
        // The constant-time comparison sees the digests, never the tokens themselves.
        expect(r.compared).toHaveLength(1);
        const [a, b] = r.compared[0]!;
        expect([a.length, b.length]).toEqual([32, 32]);
        expect(new Set([a.toString("hex"), b.toString("hex")])).toEqual(
          new Set([sha256(guess).toString("hex"), sha256(TOKEN).toString("hex")]),
        );
      }
      expect([...seen].map((c) => JSON.parse(c) as string[])).toEqual([
        ["createHash sha256", "createHash sha256", "timingSafeEqual 32 32"],
      ]);
    }
  });

  it("the right token takes the same path and is let through", async () => {
    for (const via of ["header", "query"] as const) {
      const r = await attempt(TOKEN, via);
      expect(r.status).toBe(200);
      expect(r.calls).toEqual(["createHash sha256", "createHash sha256", "timingSafeEqual 32 32"]);
    }
  });
});
