/**
 * JSON with integers of any size, written exactly. JSON.stringify throws on a bigint, yet some values we print or
 * send are integers past 2^53 - 1: seeds run to 2^64 - 1 (A1111 answers them as JSON numbers, which its Python
 * clients read exactly), and a C2PA manifest's CBOR may hold any 64-bit integer.
 */
import { randomUUID } from "node:crypto";

/**
 * JSON.stringify that writes bigints as JSON integers, exactly. Each bigint is first written as a string holding a
 * marker with a fresh random id, which no other string can contain, then the quoted marker is replaced by the
 * digits. `space` indents as JSON.stringify's third argument does.
 */
export function stringifyExact(value: unknown, space?: number): string {
  let marker: string | undefined;
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v !== "bigint") return v;
      marker ??= `bigint-${randomUUID()}:`;
      return `${marker}${v}`;
    },
    space,
  );
  if (marker === undefined) return text;
  return text.replace(new RegExp(`"${marker}(-?\\d+)"`, "g"), "$1");
}
