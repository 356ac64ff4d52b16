// Simulated clients: each runs one operation at a time against the production NodeKvService of a
// node it picks (following leader hints), over a client link with its own delay. Writes carry an
// exactly-once session and are retried with the same seq when their outcome is unknown. Every
// operation is recorded as a Jepsen-style history for the linearizability checker, and every
// acknowledged session write is kept for the exactly-once and durability checks.
import { ErrorCode, QuorumKvError, type CallContext, type SessionRef } from '@quorumkv/protocol';
import type { Prng } from '@quorumkv/testkit';
import type { Op } from './checker.js';
import type { SimScheduler } from './scheduler.js';
import type { SimNodeHost } from './sim-node-host.js';

/** Keys the clients share (few, so operations collide). */
export const KEY_COUNT = 5;
/** A client's deadline for one attempt, ms (the server's default request timeout is 5 s). */
const ATTEMPT_TIMEOUT_MS = 1000;
/** How long past its deadline a client waits for an answer before it gives the attempt up. */
const GIVE_UP_GRACE_MS = 200;
/** Attempts of one session write whose outcome stays unknown (then it is recorded as info). */
const MAX_WRITE_ATTEMPTS = 4;
/**
 * A client's pause between two operations, ms: 4 clients make ~15 operations per simulated
 * second, a few hundred per seed — enough to collide on the few keys while every fault plays out,
 * and few enough that a seed of 30 simulated seconds costs ~0.1 s of CPU.
 */
const THINK_MS = { min: 150, max: 350 };
/** A history compaction keeps this many revisions below the newest one a write was answered with. */
const COMPACT_BEHIND_REVISIONS = 20;
/** Client ↔ node delay, ms. */
const CLIENT_DELAY_MS = { min: 1, max: 4 };

const enc = new TextEncoder();
/** Simulated clients never abort a call (they give up on their own timer instead). */
const NEVER_ABORTED = new AbortController().signal;
const dec = new TextDecoder();
export const keyName = (i: number) => `k${i}`;

/** An acknowledged write: what the durability and exactly-once checks need. */
export interface AckedWrite {
  process: number;
  session: string;
  seq: number;
  key: string;
  f: 'write' | 'cas' | 'delete';
  /** The value a put or cas wrote (unique per operation), null for a delete. */
  value: string | null;
  /** The revision the answer named (the state machine's, from the write's first application). */
  revision: number;
  term: number;
  attempts: number;
}

/** Outcome of one attempt. */
type Attempt = { kind: 'ok'; value: unknown; revision?: number; term?: number; leaderHint?: string } | { kind: 'fail' | 'info'; code: string; leaderHint?: string };

export interface WorkloadStats {
  invoked: number;
  ok: number;
  fail: number;
  info: number;
  retries: number;
  /** History compactions that were answered. */
  compacts: number;
}

export class Workload {
  readonly history: Op[] = [];
  readonly acked: AckedWrite[] = [];
  readonly stats: WorkloadStats = { invoked: 0, ok: 0, fail: 0, info: 0, retries: 0, compacts: 0 };
  /** Values ever written per key (stale reads must return one of them, or null). */
  readonly written = new Map<string, Set<string>>();
  private running = false;
  /** The newest revision a write was answered with. */
  private maxRevision = 0;
  /** Operations invoked and not finished. */
  inFlight = 0;

  constructor(
    private readonly sched: SimScheduler,
    private readonly rng: Prng,
    private readonly hosts: SimNodeHost[],
    private readonly clients: number,
    private readonly note: (line: string) => void,
    /** Stale reads that returned a value no write ever wrote. */
    private readonly onBadStaleRead: (what: string) => void,
  ) {}

  start(): void {
    this.running = true;
    for (let p = 0; p < this.clients; p++) {
      const c = { process: p, session: `s${p}`, seq: 0, target: this.rng.int(this.hosts.length) };
      this.sched.after(this.rng.int(20), () => void this.loop(c));
    }
  }

  stop(): void {
    this.running = false;
  }

  private async loop(c: ClientState): Promise<void> {
    if (!this.running) return;
    this.inFlight++;
    await this.oneOp(c);
    this.inFlight--;
    if (this.running) this.sched.after(THINK_MS.min + this.rng.int(THINK_MS.max - THINK_MS.min + 1), () => void this.loop(c));
  }

  /** One operation from the mix: put 33 %, history compact 2 %, cas 15 %, delete 10 %, linearizable get 20 %, stale get 10 %, range 10 %. */
  private async oneOp(c: ClientState): Promise<void> {
    const r = this.rng.int(100);
    const key = keyName(this.rng.int(KEY_COUNT));
    if (r < 2) return this.compact(c);
    if (r < 35) return this.write(c, 'write', key, `${c.process}.${c.seq + 1}`);
    if (r < 50) return this.write(c, 'cas', key, `${c.process}.${c.seq + 1}`);
    if (r < 60) return this.write(c, 'delete', key, null);
    if (r < 80) return this.read(c, key, 'linearizable');
    if (r < 90) return this.read(c, key, 'stale');
    return this.range(c);
  }

  private record(p: number, type: Op['type'], f: Op['f'], value: unknown, extra: Partial<Op> = {}): void {
    this.history.push({ index: this.history.length, process: p, type, f, value, time: this.sched.nowMs() * 1e6, ...extra });
  }

  private async write(c: ClientState, f: 'write' | 'cas' | 'delete', key: string, value: string | null): Promise<void> {
    const seq = ++c.seq;
    const session: SessionRef = { id: c.session, seq, ackedBelow: seq };
    // A cas expects a value some client wrote to the key (or absence) and writes a fresh one.
    let from: string | null = null;
    if (f === 'cas') {
      const seen = [...(this.written.get(key) ?? [])];
      from = seen.length > 0 && this.rng.chance(0.8) ? this.rng.pick(seen) : null;
    }
    const histValue = f === 'cas' ? [key, [from, value]] : [key, value];
    if (value !== null) {
      let set = this.written.get(key);
      if (!set) this.written.set(key, (set = new Set()));
      set.add(value);
    }
    this.stats.invoked++;
    this.record(c.process, 'invoke', f, histValue);
    let unknown = false;
    for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt++) {
      if (attempt > 1) this.stats.retries++;
      const a = await this.attempt(c, (svc, ctx) => {
        const k = enc.encode(key);
        if (f === 'write') return svc.put({ key: k, value: enc.encode(value!), session }, ctx);
        if (f === 'delete') return svc.delete({ key: k, session }, ctx);
        const condition = from === null ? ({ kind: 'absent' } as const) : ({ kind: 'value', value: enc.encode(from) } as const);
        return svc.cas({ key: k, condition, action: { kind: 'put', value: enc.encode(value!) }, session }, ctx);
      });
      if (a.kind === 'ok') {
        const r = a.value as { revision: number; term: number };
        this.acked.push({ process: c.process, session: c.session, seq, key, f, value, revision: r.revision, term: r.term, attempts: attempt });
        this.maxRevision = Math.max(this.maxRevision, r.revision);
        this.finish(c, 'ok', f, histValue, { term: r.term });
        return;
      }
      if (a.kind === 'fail' && a.code === ErrorCode.CasFailed) {
        // Definite: the condition did not hold, nothing changed (a retry cannot change that).
        return this.finish(c, unknown ? 'info' : 'fail', f, histValue, { error: a.code });
      }
      if (a.kind === 'info') unknown = true;
      if (a.kind === 'fail' && !unknown && !retryable(a.code)) return this.finish(c, 'fail', f, histValue, { error: a.code });
      if (a.kind === 'fail' && !unknown && attempt === MAX_WRITE_ATTEMPTS) return this.finish(c, 'fail', f, histValue, { error: a.code });
    }
    this.finish(c, 'info', f, histValue, { error: ErrorCode.Indeterminate });
  }

  private async read(c: ClientState, key: string, consistency: 'linearizable' | 'stale'): Promise<void> {
    const f = 'read';
    this.stats.invoked++;
    // Half the reads go to any node: followers serve reads too (ReadIndex through the leader).
    if (this.rng.chance(0.5)) c.target = this.rng.int(this.hosts.length);
    if (consistency === 'linearizable') this.record(c.process, 'invoke', f, [key, null]);
    const a = await this.attempt(c, (svc, ctx) => svc.get({ key: enc.encode(key), consistency }, ctx));
    if (consistency === 'stale') {
      // Not linearizable by contract: only "some write wrote it" is checked.
      this.stats[a.kind === 'ok' ? 'ok' : 'fail']++;
      if (a.kind === 'ok') {
        const v = valueOf(a.value);
        if (v !== null && !this.written.get(key)?.has(v)) this.onBadStaleRead(`stale read of ${key} returned ${v}, which no client wrote`);
      }
      return;
    }
    if (a.kind === 'ok') this.finish(c, 'ok', f, [key, valueOf(a.value)]);
    else this.finish(c, 'fail', f, [key, null], { error: a.code });
  }

  /**
   * A history compaction below the newest revision a write answered: every node then deletes the
   * old versions in unsynced batches (kv.compact), which a power failure may lose in any position.
   * Not in the history: it changes no value a read returns.
   */
  private async compact(c: ClientState): Promise<void> {
    const revision = this.maxRevision - COMPACT_BEHIND_REVISIONS;
    if (revision < 1) return;
    this.stats.invoked++;
    const a = await this.attempt(c, (svc, ctx) => svc.compact({ revision }, ctx));
    this.stats[a.kind === 'ok' ? 'ok' : 'fail']++;
    if (a.kind === 'ok') this.stats.compacts++;
  }

  /** A linearizable range over every key: one read per key in the history, all in its interval. */
  private async range(c: ClientState): Promise<void> {
    this.stats.invoked++;
    const keys = Array.from({ length: KEY_COUNT }, (_, i) => keyName(i));
    const procBase = 1000 + c.process * KEY_COUNT; // one history process per key of this client's ranges
    for (const [i, k] of keys.entries()) this.record(procBase + i, 'invoke', 'read', [k, null]);
    const a = await this.attempt(c, (svc, ctx) =>
      svc.range({ prefix: enc.encode('k'), limit: 100, consistency: 'linearizable', maxResultBytes: 1 << 20 }, ctx),
    );
    if (a.kind !== 'ok') {
      this.stats.fail++;
      for (const [i, k] of keys.entries()) this.record(procBase + i, 'fail', 'read', [k, null], { error: a.code });
      return;
    }
    this.stats.ok++;
    const got = new Map<string, string>();
    for (const item of (a.value as { items: { key: Uint8Array; value: Uint8Array }[] }).items) got.set(dec.decode(item.key), dec.decode(item.value));
    for (const [i, k] of keys.entries()) this.record(procBase + i, 'ok', 'read', [k, got.get(k) ?? null]);
  }

  private finish(c: ClientState, type: 'ok' | 'fail' | 'info', f: Op['f'], value: unknown, extra: Partial<Op> = {}): void {
    this.stats[type]++;
    this.record(c.process, type, f, value, extra);
  }

  /**
   * One call to one node over the simulated client link: the request travels, the node's
   * production service answers (or the node dies, or the deadline passes), the answer travels.
   */
  private attempt(c: ClientState, call: (svc: NonNullable<SimNodeHost['service']>, ctx: CallContext) => Promise<unknown>): Promise<Attempt> {
    return new Promise<Attempt>((resolve) => {
      let settled = false;
      const settle = (a: Attempt) => {
        if (settled) return;
        settled = true;
        this.sched.cancel(giveUp);
        if (a.kind !== 'ok' && a.leaderHint !== undefined) c.target = this.hosts.findIndex((h) => h.id === a.leaderHint);
        else if (a.kind !== 'ok') c.target = this.rng.int(this.hosts.length);
        resolve(a);
      };
      const host = this.hosts[c.target] ?? this.hosts[0]!;
      const deadlineMs = this.sched.nowMs() + ATTEMPT_TIMEOUT_MS;
      const giveUp = this.sched.after(ATTEMPT_TIMEOUT_MS + GIVE_UP_GRACE_MS, () => settle({ kind: 'info', code: 'client-gave-up' }));
      // The request arrives; a paused node reads it when it resumes.
      this.sched.after(this.clientDelay(), () => this.sched.whenRunning(host, () => {
        const svc = host.service;
        if (!host.alive() || !svc) return settle({ kind: 'fail', code: 'unreachable' });
        let p: Promise<unknown>;
        try {
          p = call(svc, { signal: NEVER_ABORTED, deadlineMs });
        } catch (e) {
          p = Promise.reject(e);
        }
        p.then(
          (value) => this.sched.after(this.clientDelay(), () => host.alive() && settle({ kind: 'ok', value })),
          (e: unknown) => this.sched.after(this.clientDelay(), () => host.alive() && settle(classify(e))),
        );
      }));
    });
  }

  private clientDelay(): number {
    return CLIENT_DELAY_MS.min + this.rng.int(CLIENT_DELAY_MS.max - CLIENT_DELAY_MS.min + 1);
  }
}

interface ClientState {
  process: number;
  session: string;
  seq: number;
  /** Index of the host this client talks to. */
  target: number;
}

function valueOf(v: unknown): string | null {
  const item = (v as { item: { value: Uint8Array } | null }).item;
  return item ? dec.decode(item.value) : null;
}

/** Codes that say the write was NOT applied and another node may take it. */
function retryable(code: string): boolean {
  return code === ErrorCode.NotLeader || code === ErrorCode.NoLeader || code === ErrorCode.Busy || code === ErrorCode.Unavailable || code === 'unreachable';
}

/** What an error says about the write: not applied (fail) or unknown (info). */
function classify(e: unknown): Attempt {
  if (!(e instanceof QuorumKvError)) return { kind: 'info', code: `unexpected: ${(e as Error)?.message ?? String(e)}` };
  const hint = (e as { leaderHint?: { id: string } }).leaderHint?.id;
  const definite = retryable(e.code) || e.code === ErrorCode.CasFailed;
  return { kind: definite ? 'fail' : 'info', code: e.code, ...(hint ? { leaderHint: hint } : {}) };
}
