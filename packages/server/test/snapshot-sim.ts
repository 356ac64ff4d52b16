// A deterministic world for the snapshot state machines (src/snapshot-sender.ts,
// src/snapshot-receiver.ts): one leader's SnapshotSender, a SnapshotReceiver per follower, the
// node's TokenBucket, a ManualClock, an in-memory snapshot source and staging area, and links
// that deliver frames in order through the real msgpack codec. Nothing happens unless `run`
// says so; time moves only to the next due timer. Everything observable is written to a
// transcript of one line per frame, delivery, outcome and warning:
//
//   t=200ms  n1→n2 chunk offset=100 len=100
//   t=200ms  n2→n1 nack offset=100 "crc mismatch"
//
// The driver keeps the machines' contracts: the sender's asynchronous results come back through
// the event queue; a receiver I/O result is the next event after the actions that asked for it.
import { MessageType, type Message } from '@quorumkv/raft';
import { Prng } from '@quorumkv/testkit';
import { decodeFrame, encodeFrame, type ReceiverFrame, type SenderFrame } from '../src/snapshot-frames.js';
import { SnapshotReceiver, type ReceiveAction, type ReceiveEvent } from '../src/snapshot-receiver.js';
import { SnapshotSender, type SendAction, type SendEvent, type SnapshotFaults } from '../src/snapshot-sender.js';
import { TokenBucket, type TokenRequest } from '../src/token-bucket.js';
import { ManualClock, type TimerHandle } from '../src/world.js';

/** Upper bound on queued steps per `run`: a run that does not settle is a bug. */
const MAX_STEPS_PER_RUN = 1_000_000;

export interface SimOptions {
  leader?: string;
  followers: string[];
  /** The snapshot the leader's store holds: index, term, and its chunks' sizes. */
  snapshot: { index: number; term: number; chunkSizes: number[] };
  rateBytesPerSec?: number;
  maxConcurrent?: number;
  faults?: SnapshotFaults;
  seed?: number;
  /** Also write the sender's log lines at level info (default: warn and above only). */
  verbose?: boolean;
}

interface Conn {
  id: number;
  follower: string;
  open: boolean;
}

interface Follower {
  id: string;
  machine: SnapshotReceiver;
  /** Bytes written to the staging area, and whether a stage is open. */
  staged: Uint8Array[] | undefined;
  /** What the last successful install swapped in. */
  installed: Uint8Array | undefined;
  /** The Snap message the core got (it would ask to install it). */
  delivered: Message | undefined;
  up: boolean;
  failInstall: boolean;
  /** Frames to and from it vanish (a silent partition); connections stay open. */
  blackholed: boolean;
}

export class SnapshotSim {
  readonly clock = new ManualClock();
  readonly lines: string[] = [];
  readonly sender: SnapshotSender;
  readonly bucket: TokenBucket;
  readonly leader: string;
  private readonly followers = new Map<string, Follower>();
  private readonly queue: Array<() => void> = [];
  /** The leader's current connection to each follower. */
  private readonly links = new Map<string, Conn>();
  private readonly reads = new Map<string, { next: number; chunks: Uint8Array[] }>();
  private readonly timers = new Map<string, TimerHandle>();
  private readonly tokens = new Map<string, TokenRequest>();
  private connIds = 0;
  /** Reports the core got: "n2 ok", "n3 failed". */
  readonly reports: string[] = [];
  /** Sender actions of the last run, for tests that look past the transcript. */
  readonly sendActions: SendAction[] = [];

  constructor(private readonly opts: SimOptions) {
    this.leader = opts.leader ?? 'n1';
    const random = new Prng(opts.seed ?? 1);
    this.sender = new SnapshotSender({ maxConcurrent: opts.maxConcurrent ?? 2, random, ...(opts.faults ? { faults: opts.faults } : {}) });
    const chunkMax = Math.max(...opts.snapshot.chunkSizes);
    this.bucket = new TokenBucket(opts.rateBytesPerSec ?? 0, chunkMax, this.clock);
    for (const id of opts.followers) {
      this.followers.set(id, { id, machine: new SnapshotReceiver(id), staged: undefined, installed: undefined, delivered: undefined, up: true, failInstall: false, blackholed: false });
    }
  }

  /** The bytes of the leader's snapshot (chunk i is filled with the byte i + 1). */
  snapshotBytes(): Uint8Array {
    return concat(this.chunks());
  }

  follower(id: string): Follower {
    const f = this.followers.get(id);
    if (!f) throw new Error(`no follower ${id}`);
    return f;
  }

  /** The core asks the leader to send a snapshot to `to`. */
  want(to: string): void {
    const msg: Message = {
      type: MessageType.Snap, from: this.leader, to, term: this.opts.snapshot.term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
      snapshot: { metadata: { index: this.opts.snapshot.index, term: this.opts.snapshot.term, confState: { voters: [this.leader, ...this.opts.followers], learners: [] } }, data: new Uint8Array(0) },
    };
    this.queue.push(() => this.send({ type: 'want', msg }));
  }

  /** The host stops the transfer to `peer` (leadership lost, peer removed, shutdown). */
  cancel(peer: string, reason: string): void {
    this.queue.push(() => this.send({ type: 'cancel', peer, reason }));
  }

  /** The follower's process goes away (its connections drop, dials fail) or comes back empty. */
  setUp(id: string, up: boolean): void {
    const f = this.follower(id);
    f.up = up;
    this.note(`${id} ${up ? 'up' : 'down'}`);
    if (up) return;
    f.machine = new SnapshotReceiver(id); // a restart forgets everything in memory
    f.staged = undefined;
    f.delivered = undefined;
    const c = this.links.get(id);
    if (c?.open) this.closeConn(c, 'peer went away', { toSender: true, toReceiver: false });
  }

  /** The follower's core asks for the delivered snapshot to be installed (its next Ready). */
  install(id: string): void {
    const f = this.follower(id);
    const index = f.delivered?.snapshot?.metadata.index ?? -1;
    this.queue.push(() => this.receive(f, { type: 'install', index }));
  }

  /**
   * Runs until nothing is queued and no timer is due within `maxMs` of simulated time from now
   * (the default stays below the receiver's staged-snapshot TTL, so a stage waits for `install`).
   * Returns the simulated time it took.
   */
  run(maxMs = 60_000): number {
    const start = this.clock.nowMs();
    const until = start + maxMs;
    for (let steps = 0; steps < MAX_STEPS_PER_RUN; steps++) {
      const next = this.queue.shift();
      if (next) {
        next();
        continue;
      }
      const due = this.clock.nextDueMs();
      if (due === null || due > until) return this.clock.nowMs() - start;
      this.clock.advance(due - this.clock.nowMs());
    }
    throw new Error(`the simulation did not settle within ${MAX_STEPS_PER_RUN} steps`);
  }

  // -----------------------------------------------------------------------------------------
  // The leader.

  private chunks(): Uint8Array[] {
    return this.opts.snapshot.chunkSizes.map((n, i) => new Uint8Array(n).fill(i + 1));
  }

  private send(e: SendEvent): void {
    for (const a of this.sender.step(e, this.clock.nowMs())) {
      this.sendActions.push(a);
      this.doSend(a);
    }
  }

  private later(e: SendEvent): void {
    this.queue.push(() => this.send(e));
  }

  private doSend(a: SendAction): void {
    const s = this.opts.snapshot;
    switch (a.type) {
      case 'open':
        this.reads.set(a.peer, { next: 0, chunks: this.chunks() });
        return this.later({ type: 'opened', peer: a.peer, info: { index: s.index, term: s.term } });
      case 'read': {
        const r = this.reads.get(a.peer)!;
        const c = r.chunks[r.next++];
        return this.later(c ? { type: 'chunkRead', peer: a.peer, data: c } : { type: 'readEnd', peer: a.peer });
      }
      case 'dial':
        return this.dial(a.peer);
      case 'send': {
        const c = this.links.get(a.peer);
        if (!c?.open) return;
        const f = this.follower(a.peer);
        this.note(`${this.leader}→${a.peer} ${describeFrame(a.frame)}${f.blackholed ? ' (lost)' : ''}`);
        if (f.blackholed) return;
        const bytes = encodeFrame(a.frame);
        this.queue.push(() => {
          if (c.open) this.receive(f, { type: 'frame', conn: c.id, frame: decodeFrame(bytes) });
        });
        return;
      }
      case 'hangUp': {
        const c = this.links.get(a.peer);
        if (c?.open) this.closeConn(c, 'hang-up', { toSender: false, toReceiver: true });
        return;
      }
      case 'takeTokens':
        this.tokens.set(a.peer, this.bucket.take(a.bytes, () => this.later({ type: 'tokens', peer: a.peer, request: a.request })));
        return;
      case 'dropTokens':
        this.tokens.get(a.peer)?.cancel();
        return;
      case 'setTimer': {
        const key = `${a.peer}/${a.timer}`;
        const old = this.timers.get(key);
        if (old) this.clock.clearTimer(old);
        this.timers.set(key, this.clock.setTimer(a.ms, () => {
          this.timers.delete(key);
          this.send({ type: 'timer', peer: a.peer, timer: a.timer });
        }));
        if (a.timer === 'backoff') this.note(`${this.leader} backoff ${a.peer} ${a.ms}ms`);
        return;
      }
      case 'clearTimer': {
        const key = `${a.peer}/${a.timer}`;
        const t = this.timers.get(key);
        if (t) this.clock.clearTimer(t);
        this.timers.delete(key);
        return;
      }
      case 'log':
        if (a.level !== 'info' && a.level !== 'debug') this.note(`${this.leader} ${a.level} "${a.msg}"${describeFields(a.fields)}`);
        else if (this.opts.verbose) this.note(`${this.leader} ${a.level} "${a.msg}"`);
        return;
      case 'finished':
        this.reports.push(`${a.peer} ${a.ok ? 'ok' : 'failed'}`);
        this.note(`${this.leader} finished ${a.peer} ${a.ok ? 'ok' : 'failed'} index=${a.index} bytes=${a.bytes}`);
        return;
    }
  }

  private dial(peer: string): void {
    const f = this.follower(peer);
    if (!f.up) {
      this.note(`${this.leader} dial ${peer}: refused`);
      return this.later({ type: 'dialFailed', peer, error: 'connection refused' });
    }
    const c: Conn = { id: ++this.connIds, follower: peer, open: true };
    this.links.set(peer, c);
    this.note(`${this.leader} dial ${peer}: conn ${c.id}`);
    this.queue.push(() => this.receive(f, { type: 'connected', conn: c.id, peer: this.leader }));
    this.later({ type: 'connected', peer });
  }

  private closeConn(c: Conn, why: string, tell: { toSender: boolean; toReceiver: boolean }): void {
    c.open = false;
    this.note(`conn ${c.id} closed (${why})`);
    if (tell.toReceiver) {
      const f = this.follower(c.follower);
      this.queue.push(() => this.receive(f, { type: 'disconnected', conn: c.id }));
    }
    if (tell.toSender && this.links.get(c.follower) === c) this.later({ type: 'disconnected', peer: c.follower, reason: why });
  }

  // -----------------------------------------------------------------------------------------
  // The followers.

  private receive(f: Follower, first: ReceiveEvent): void {
    if (!f.up) return;
    const events: ReceiveEvent[] = [first];
    for (let e = events.shift(); e; e = events.shift()) {
      for (const a of f.machine.step(e, this.clock.nowMs())) {
        const result = this.doReceive(f, a);
        if (result) events.push(result);
      }
    }
  }

  private doReceive(f: Follower, a: ReceiveAction): ReceiveEvent | undefined {
    switch (a.type) {
      case 'send': {
        const c = this.links.get(f.id);
        if (!c?.open || c.id !== a.conn) return undefined;
        this.note(`${f.id}→${this.leader} ${describeFrame(a.frame)}${f.blackholed ? ' (lost)' : ''}`);
        if (f.blackholed) return undefined;
        const bytes = encodeFrame(a.frame);
        this.queue.push(() => {
          if (c.open) this.send({ type: 'frame', peer: f.id, frame: decodeFrame(bytes) });
        });
        return undefined;
      }
      case 'closeConn': {
        const c = this.links.get(f.id);
        if (c?.open && c.id === a.conn) this.closeConn(c, `${a.code} ${a.reason}`, { toSender: true, toReceiver: false });
        return undefined;
      }
      case 'openWriter':
        f.staged = [];
        return { type: 'staged', bytesReceived: 0 };
      case 'write':
        f.staged!.push(Uint8Array.from(a.data));
        return { type: 'written' };
      case 'abortWriter':
        if (f.staged) this.note(`${f.id} stage dropped`);
        f.staged = undefined;
        return undefined;
      case 'installWriter':
        if (f.failInstall) return { type: 'installFailed', error: 'disk full' };
        f.installed = concat(f.staged!);
        f.staged = undefined;
        return { type: 'installed' };
      case 'deliver':
        f.delivered = a.msg;
        this.note(`${f.id} core ← Snap index=${a.msg.snapshot!.metadata.index} term=${a.msg.snapshot!.metadata.term}`);
        return undefined;
      case 'setStageTimer':
        this.clock.setTimer(a.ms, () => this.receive(f, { type: 'stageExpired', stage: a.stage, corePendingIndex: null }));
        return undefined;
      case 'installDone':
        this.note(a.ok ? `${f.id} installed (${f.installed!.length} bytes)` : `${f.id} install failed: ${a.error}`);
        return undefined;
      case 'log':
        if (a.level !== 'info' && a.level !== 'debug') this.note(`${f.id} ${a.level} "${a.msg}"${describeFields(a.fields)}`);
        return undefined;
    }
  }

  private note(line: string): void {
    this.lines.push(`t=${this.clock.nowMs()}ms ${line}`);
  }
}

function describeFrame(f: SenderFrame | ReceiverFrame): string {
  switch (f.t) {
    case 'begin':
      return `begin index=${f.index} term=${f.term}${f.fresh ? ' fresh' : ''}`;
    case 'chunk':
      return `chunk offset=${f.offset} len=${f.data.length}`;
    case 'end':
      return `end total=${f.total}`;
    case 'resume':
    case 'ack':
      return `${f.t} offset=${f.offset}`;
    case 'nack':
      return `nack offset=${f.offset} "${f.reason}"`;
    case 'done':
      return 'done';
    case 'fail':
      return `fail "${f.reason}"`;
  }
}

/** The fields a warning line shows (peer/index/from are evident from the line). */
function describeFields(fields: Record<string, unknown>): string {
  const shown = Object.entries(fields).filter(([k]) => k === 'offset' || k === 'reason' || k === 'err' || k === 'attempt' || k === 'attempts');
  return shown.length === 0 ? '' : ' ' + shown.map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : String(v)}`).join(' ');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
