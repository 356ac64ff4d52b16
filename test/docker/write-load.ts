// A bounded, paced background write load through the client library that records every
// acknowledged write, and the check that none of them was lost.
import type { KvClient } from '@quorumkv/client';
import { sleep, waitFor } from './docker-env.js';

/** One write the cluster acknowledged: after it, `key` must read `value` (each key is written once). */
export interface AckedWrite {
  key: string;
  value: string;
  revision: number;
}

/** Options of {@link WriteLoad}. */
export interface WriteLoadOptions {
  /** Key prefix; keys are `<prefix>/<000000n>`. */
  prefix: string;
  /** Writers in parallel. Default 2. */
  concurrency?: number;
  /** Pause of each writer after each write, so a long fault does not pile up thousands of keys. Default 20. */
  pauseMs?: number;
  /** Most writes started in total; the load stops by itself there. Default 20 000. */
  maxWrites?: number;
  /** Deadline of one write, retries included. Default 8000. */
  writeTimeoutMs?: number;
}

/** Runs writers until {@link WriteLoad.stop}; see the file comment. */
export class WriteLoad {
  readonly acked: AckedWrite[] = [];
  /** Writes that failed: their outcome is unknown (they may or may not have been applied). */
  failed = 0;
  private next = 0;
  private stopped = false;
  private readonly writers: Promise<void>[];

  constructor(
    private readonly kv: KvClient,
    private readonly o: WriteLoadOptions,
  ) {
    this.writers = Array.from({ length: o.concurrency ?? 2 }, () => this.writer());
  }

  private async writer(): Promise<void> {
    const maxWrites = this.o.maxWrites ?? 20_000;
    while (!this.stopped && this.next < maxWrites) {
      const i = this.next++;
      const key = `${this.o.prefix}/${String(i).padStart(7, '0')}`;
      const value = `v${i}`;
      try {
        const { revision } = await this.kv.put(key, value, { timeoutMs: this.o.writeTimeoutMs ?? 8_000 });
        this.acked.push({ key, value, revision });
      } catch {
        this.failed++;
      }
      await sleep(this.o.pauseMs ?? 20);
    }
  }

  /** Waits until `n` more writes than now have been acknowledged (bounded by `timeoutMs`). */
  async waitForMoreAcks(n: number, timeoutMs: number): Promise<void> {
    const target = this.acked.length + n;
    await waitFor(`${n} more acknowledged writes (have ${this.acked.length}, ${this.failed} failed so far)`, () => (this.acked.length >= target ? true : undefined), timeoutMs);
  }

  /** Stops the writers and waits for the writes in flight to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.writers);
  }
}

/**
 * Reads back every acknowledged write with one linearizable range scan over the prefix and
 * returns a description of each that is missing or different (empty = nothing lost).
 */
export async function lostWrites(kv: KvClient, prefix: string, acked: AckedWrite[]): Promise<string[]> {
  const stored = new Map<string, { value: string; modRevision: number }>();
  for await (const it of kv.range({ prefix: `${prefix}/`, as: 'string', timeoutMs: 10_000 })) {
    stored.set(it.key, { value: it.value, modRevision: it.modRevision });
  }
  const problems: string[] = [];
  for (const w of acked) {
    const s = stored.get(w.key);
    if (!s) problems.push(`${w.key} (acknowledged at revision ${w.revision}) is missing`);
    else if (s.value !== w.value || s.modRevision !== w.revision) {
      problems.push(`${w.key}: expected ${w.value}@${w.revision}, read ${s.value}@${s.modRevision}`);
    }
  }
  return problems;
}
