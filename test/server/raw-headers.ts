import { connect } from "node:net";

/**
 * The status line and headers of one HTTP/1.1 request sent byte for byte (as harness.ts's rawRequest sends it),
 * read without waiting for the body: an event stream's body never ends by itself, and a test that only looks at
 * the status and headers must not wait for it.
 */
export function rawHeaders(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, string> }> {
  const url = new URL(base);
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${headers["host"] ?? url.host}`, "Connection: close"];
  for (const [k, v] of Object.entries(headers)) if (k !== "host") lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const request = `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`;
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = connect(Number(url.port), url.hostname, () => socket.write(request));
    const done = () => {
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return false;
      const [statusLine, ...fields] = text.slice(0, end).split("\r\n");
      const out: Record<string, string> = {};
      for (const f of fields) {
        const colon = f.indexOf(":");
        if (colon > 0) out[f.slice(0, colon).trim().toLowerCase()] = f.slice(colon + 1).trim();
      }
      socket.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1] ?? 0), headers: out });
      return true;
    };
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      done();
    });
    socket.on("error", reject);
    socket.on("end", () => {
      if (!done()) reject(new Error(`${method} ${target}: connection closed before the headers: ${JSON.stringify(text)}`));
    });
  });
}
