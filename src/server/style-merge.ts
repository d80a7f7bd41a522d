/**
 * A prompt style's text merged into a prompt as AUTOMATIC1111 merges it: the style's `{prompt}` placeholder takes
 * the prompt, or, without one, the style is appended after ", " (nothing empty joined). Pure, so the page applies a
 * style exactly as the server does.
 */
export function mergeStyle(style: string, prompt: string): string {
  if (style.includes("{prompt}")) return style.replaceAll("{prompt}", prompt);
  return [prompt.trim(), style.trim()].filter((p) => p !== "").join(", ");
}
