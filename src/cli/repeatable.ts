/** Commander's collector for a repeatable option (`--models-dir A --models-dir B`): every value, in order. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
