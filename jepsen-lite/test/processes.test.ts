import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRun } from '../src/check.js';
import { NODE_RSS_BYTES_MAX, checkNodeExits, checkNodeMemory } from '../src/checkers/processes.js';
import { ProcessWatch, parseVmRssBytes, readRssBytes } from '../src/procwatch.js';
import { RUN_FILES, loadRunDir } from '../src/rundir.js';

const MiB = 1024 * 1024;

describe('process watch', () => {
  it('reads VmRSS from /proc/PID/status', () => {
    expect(parseVmRssBytes('Name:\tnode\nVmPeak:\t  900 kB\nVmRSS:\t   81234 kB\nThreads: 7\n')).toBe(81234 * 1024);
    expect(parseVmRssBytes('Name:\tzombie\n')).toBeUndefined();
    expect(readRssBytes(process.pid)).toBeGreaterThan(10 * MiB);
    expect(readRssBytes(2 ** 22 + 12345)).toBeUndefined();
  });

  it('an exit is expected only between expectExit and the next start', () => {
    let now = 0;
    const w = new ProcessWatch(() => now);
    w.started('n1', 10);
    w.expectExit('n1', 'killed by the harness');
    now = 5;
    w.exited('n1', 10, null, 'SIGKILL');
    w.started('n1', 11);
    w.unexpect('n1');
    now = 9;
    w.exited('n1', 11, 1, null);
    expect(w.exits).toEqual([
      { node: 'n1', pid: 10, time: 5, code: null, signal: 'SIGKILL', expected: 'killed by the harness' },
      { node: 'n1', pid: 11, time: 9, code: 1, signal: null, expected: null },
    ]);
  });
});

describe('node-exits and node-memory checkers', () => {
  it('a node that exits on its own is a violation; exits the harness caused are not', () => {
    const kill = { node: 'n1', pid: 1, time: 1, code: null, signal: 'SIGKILL', expected: 'killed by the harness' };
    expect(checkNodeExits([kill]).valid).toBe(true);
    const crash = { node: 'n2', pid: 2, time: 2, code: 1, signal: null, expected: null };
    const r = checkNodeExits([kill, crash]);
    expect(r.valid).toBe(false);
    expect(r.evidence.unexpected).toEqual([crash]);
    expect(r.evidence.expectedByReason).toEqual({ 'killed by the harness': 1 });
  });

  it('memory above the stated bound is a violation (once per process); no samples is unknown', () => {
    const s = (pid: number, mib: number) => ({ node: `n${pid}`, pid, time: 0, rssBytes: mib * MiB });
    expect(checkNodeMemory([s(1, 80), s(1, 120)]).valid).toBe(true);
    const over = checkNodeMemory([s(1, 80), s(2, 600), s(2, 900)]);
    expect(over.valid).toBe(false);
    expect(over.evidence.overBound).toEqual([s(2, 600)]);
    expect(over.evidence.perNode.n2).toEqual({ firstMiB: 600, peakMiB: 900 });
    expect(NODE_RSS_BYTES_MAX).toBe(512 * MiB);
    expect(checkNodeMemory([]).valid).toBe('unknown');
  });

  it('are run from exits.jsonl and rss.jsonl, and skipped without them (Docker)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jl-proc-'));
    try {
      writeFileSync(join(dir, RUN_FILES.history), '');
      expect(checkRun(loadRunDir(dir)).skipped.map((x) => x.checker)).toEqual(expect.arrayContaining(['node-exits', 'node-memory']));
      writeFileSync(join(dir, RUN_FILES.exits), JSON.stringify({ node: 'n1', pid: 5, time: 3, code: 134, signal: null, expected: null }) + '\n');
      writeFileSync(join(dir, RUN_FILES.rss), JSON.stringify({ node: 'n1', pid: 5, time: 1, rssBytes: 90 * MiB }) + '\n');
      const c = checkRun(loadRunDir(dir));
      expect(c.results['node-exits']?.valid).toBe(false);
      expect(c.results['node-memory']?.valid).toBe(true);
      writeFileSync(join(dir, RUN_FILES.exits), '{"node":"n1","pid":5,"time":3,"code":"x","signal":null,"expected":null}\n');
      expect(() => loadRunDir(dir)).toThrow(/exits.jsonl:1: `code` must be a number or null/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
