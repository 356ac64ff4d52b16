// What the harness sees of the node processes it runs: every exit (and whether the harness caused
// or expected it) and resident memory sampled from /proc/PID/status. The checkers in
// checkers/processes.ts judge them: a node process must never die on its own, and its memory must
// stay within a stated bound whatever its peers send it.

import { readFileSync } from 'node:fs';

/** One node process exit. `expected` names the harness's reason; null = the node died on its own. */
export interface NodeExit {
  node: string;
  pid: number;
  /** ns on the run's clock (the history's). */
  time: number;
  code: number | null;
  signal: string | null;
  expected: string | null;
}

/** One resident-memory sample of a node process. */
export interface RssSample {
  node: string;
  pid: number;
  time: number;
  rssBytes: number;
}

/** Parses the `VmRSS:` line of /proc/PID/status (kB) into bytes; undefined when absent. */
export function parseVmRssBytes(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m === null ? undefined : Number(m[1]) * 1024;
}

/** Resident memory of `pid` in bytes, or undefined (no such process, no /proc). */
export function readRssBytes(pid: number): number | undefined {
  try {
    return parseVmRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Exit and memory records of a cluster's node processes. The cluster reports starts and exits
 * and says beforehand which exits it causes (`expectExit`); the orchestrator samples memory and
 * sets the clock to the history's when the run starts.
 */
export class ProcessWatch {
  readonly exits: NodeExit[] = [];
  readonly rss: RssSample[] = [];
  private readonly running = new Map<string, number>();
  private readonly expected = new Map<string, string>();
  private nowNs: () => number;

  constructor(nowNs: () => number = () => Number(process.hrtime.bigint())) {
    this.nowNs = nowNs;
  }

  /** Times from now on are on `nowNs` (the history's clock). */
  useClock(nowNs: () => number): void {
    this.nowNs = nowNs;
  }

  /** A node process started. */
  started(node: string, pid: number): void {
    this.running.set(node, pid);
  }

  /** The node's next exit is caused or expected by the harness, for `reason`, until {@link unexpect}. */
  expectExit(node: string, reason: string): void {
    this.expected.set(node, reason);
  }

  /** The node's exits are unexpected again (it was brought back). */
  unexpect(node: string): void {
    this.expected.delete(node);
  }

  /** A node process exited. */
  exited(node: string, pid: number, code: number | null, signal: string | null): void {
    if (this.running.get(node) === pid) this.running.delete(node);
    this.exits.push({ node, pid, time: this.nowNs(), code, signal, expected: this.expected.get(node) ?? null });
  }

  /** Samples the resident memory of every running node process. */
  sampleRss(): void {
    const time = this.nowNs();
    for (const [node, pid] of this.running) {
      const rssBytes = readRssBytes(pid);
      if (rssBytes !== undefined) this.rss.push({ node, pid, time, rssBytes });
    }
  }
}
