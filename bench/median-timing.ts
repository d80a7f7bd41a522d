/**
 * One warm-up run (the first run allocates and tunes), then `runs` timed runs: their median and the fastest, the
 * latter the less disturbed by other work on a shared machine. For benches that compare rows measured in one run.
 */
export async function medianTiming(
  runs: number,
  run: () => Promise<unknown>,
): Promise<{ seconds: number; fastest: number }> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await run();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return { seconds: times[Math.floor(times.length / 2)]!, fastest: times[0]! };
}
