// The loop of the packages' micro-benchmarks (packages/*/bench/*-bench.mjs): warm up, then call
// fn(i) in blocks of 1000 until `seconds` pass or `maxCalls` calls were made. The sink keeps V8
// from dropping the calls.

/** Mean µs per call of fn(i). */
export function measure(fn, { seconds, maxCalls = 20_000_000 }) {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += fn(i) === undefined ? 0 : 1; // warm-up
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let calls = 0;
  while (calls < maxCalls) {
    for (let j = 0; j < 1000; j++) sink += fn(calls + j) === undefined ? 0 : 1;
    calls += 1000;
    if (process.hrtime.bigint() >= deadline) break;
  }
  return { us: Number(process.hrtime.bigint() - start) / calls / 1000, sink };
}
