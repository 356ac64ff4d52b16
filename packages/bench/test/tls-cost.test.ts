// The tls-cost table: one row per run and the median cost of TLS in ops/s and node CPU per put.
import { describe, expect, it } from 'vitest';
import { formatTlsCost, type TlsCostRun } from '../src/tls-cost.js';

const run = (tls: boolean, rep: number, opsPerSec: number, cpu: number): TlsCostRun => ({ tls, rep, opsPerSec, p50Ms: 10, p99Ms: 50, errors: 0, nodeCpuUsPerOp: cpu });

describe('formatTlsCost', () => {
  it('reports the median ops/s cost and the node CPU per put of TLS against plaintext', () => {
    const text = formatTlsCost([run(false, 1, 1000, 400), run(true, 1, 900, 460), run(false, 2, 1200, 380), run(true, 2, 1000, 440), run(false, 3, 800, 420), run(true, 3, 850, 450)]);
    expect(text).toContain('| 1 | plain | 1000 | 10.0 | 50.0 | 0 | 400 |');
    expect(text).toContain('median ops/s: plain 1000, TLS 900: TLS costs 10.0 % (target <= 15 %)');
    expect(text).toContain('median node CPU per put: plain 400 µs, TLS 450 µs (12.5 %)');
  });
});
