import type { LicenseFields } from "./licenses.js";

/**
 * A repository's licence as the Hub states it: the model card's metadata (`cardData.license`, `license_name`,
 * `license_link`, what the model information API returns), else a `license:` tag.
 */
export function licenseFromModelInfo(info: { cardData?: unknown; tags?: unknown }): LicenseFields {
  const card = info.cardData && typeof info.cardData === "object" ? (info.cardData as Record<string, unknown>) : {};
  const fields = cardFields(card);
  if (fields.license) return fields;
  const tags = Array.isArray(info.tags) ? info.tags.filter((t): t is string => typeof t === "string") : [];
  const tag = tags.find((t) => t.startsWith("license:"));
  return tag ? { ...fields, license: tag.slice("license:".length) } : fields;
}

/**
 * The same from a model card's text (README.md): its YAML front matter, read for the three licence keys only
 * (`key: value`, or a list whose first item is taken).
 */
export function licenseFromModelCard(text: string): LicenseFields {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\s*(\r?\n|$)/.exec(text);
  if (!m) return {};
  const card: Record<string, string> = {};
  const lines = m[1]!.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const kv = /^(license|license_name|license_link):\s*(.*)$/.exec(lines[i]!);
    if (!kv) continue;
    let value = unquote(kv[2]!.replace(/\s+#.*$/, ""));
    if (!value) {
      const item = /^\s*-\s*(.+)$/.exec(lines[i + 1] ?? "");
      value = item ? unquote(item[1]!) : "";
    }
    if (value) card[kv[1]!] = value;
  }
  return cardFields(card);
}

function cardFields(card: Record<string, unknown>): LicenseFields {
  const first = (v: unknown): string | undefined => {
    const s = Array.isArray(v) ? v[0] : v;
    return typeof s === "string" && s.trim() ? s.trim() : undefined;
  };
  const license = first(card.license),
    licenseName = first(card.license_name),
    licenseLink = first(card.license_link);
  return {
    ...(license ? { license } : {}),
    ...(licenseName ? { licenseName } : {}),
    ...(licenseLink ? { licenseLink } : {}),
  };
}

function unquote(s: string): string {
  const t = s.trim();
  return /^(["']).*\1$/.test(t) ? t.slice(1, -1) : t;
}
