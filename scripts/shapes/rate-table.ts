/** A markdown table of success rates: one row per run, keyed by its setting (cfg, strength), one column per attribute. */
export function rateTable<C extends string>(
  setting: string,
  columns: readonly C[],
  rows: readonly { key: number | string; count: number; rates: Readonly<Record<C, number>> }[],
): string {
  const title = (c: string) => (c === "all" ? "all 4 right" : c);
  const head = `| ${setting} | n | ${columns.map(title).join(" | ")} |`;
  const rule = `|${" --- |".repeat(columns.length + 2)}`;
  const body = rows.map(
    (r) => `| ${r.key} | ${r.count} | ${columns.map((c) => `${(100 * r.rates[c]).toFixed(0)}%`).join(" | ")} |`,
  );
  return [head, rule, ...body].join("\n");
}
