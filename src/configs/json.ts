/** A config.json as parsed: keys as the reference writes them (snake_case). */
export type ConfigJson = Record<string, unknown>;

/** A per-level value that a config may give once for every level or as a list (diffusers allows both). */
export function perLevel(value: unknown, levels: number, fallback: number): number[] {
  if (Array.isArray(value)) return value.map(Number);
  const v = value === null || value === undefined ? fallback : Number(value);
  return Array.from({ length: levels }, () => v);
}
