// The sending side of snapshot catch-up as a state machine: events in, actions out. No sockets,
// disk, timers or randomness inside; the adapter (snapshots.ts) carries out the actions and feeds
// their results back as events. The same inputs always give the same actions.
//
// One SnapshotSender per node holds every outgoing transfer: at most `maxConcurrent` run at once,
// others wait in a bounded queue. A transfer: open a consistent snapshot read (`open`), connect
// (`dial`), announce it (begin → the receiver answers resume {offset}), stream chunks of the read
// within a window of unacknowledged chunks, each after taking its bytes from the node's token
// bucket (`takeTokens`), then end {total, sha256} → done. A refused chunk (nack) rewinds to the
// receiver's offset; a lost connection or a stall redials after a jittered back-off and resumes
// from the last acknowledged offset; after MAX_ATTEMPTS the transfer is reported failed.
//
// Contract with the driver: actions are carried out in the order returned; the result of an
// asynchronous action (`open` → opened/openFailed, `dial` → connected/dialFailed, `read` →
// chunkRead/readEnd/readFailed, `takeTokens` → tokens) comes back as an event for the same peer,
// at any later time; a timer set with `setTimer` comes back as a `timer` event unless cleared or
// replaced (one timer per peer and kind). Events for a peer with no transfer are ignored.
import { createHash, type Hash } from 'node:crypto';
import type { ConfState, Message } from '@quorumkv/raft';
import { crc32 } from './crc32.js';
import { isIdx, type RawFrame, type SenderFrame } from './snapshot-frames.js';
import type { Random } from './world.js';

/** How many unacknowledged chunks a sender keeps in flight (and so may resend after a reconnect). */
export const SEND_WINDOW_CHUNKS = 4;
/** A connection that makes no progress (no frame while one is awaited) for this long is dropped and redialled. */
export const STALL_TIMEOUT_MS = 10_000;
/** Connection attempts per transfer before it is reported failed to the core. */
export const MAX_ATTEMPTS = 8;
export const BACKOFF_INITIAL_MS = 200;
export const BACKOFF_MAX_MS = 5_000;
/** A chunk refused this often in one transfer means something is systematically wrong: give up the attempt. */
export const MAX_REFUSALS_PER_OFFSET = 16;
/** Transfers waiting for a free slot. */
export const MAX_QUEUED_TRANSFERS = 64;

/** Test-only fault injection, enabled by hidden server flags (never in production). */
export interface SnapshotFaults {
  /** Corrupt the bytes (after computing the CRC) of every Nth chunk sent, once per chunk. */
  corruptEveryNthChunk?: number;
  /** Drop the connection after sending this many chunks (once per transfer). */
  cutAfterChunks?: number;
}

export type SendTimer = 'stall' | 'backoff';

/** What the snapshot read turned out to hold (the applied state when it was captured). */
export interface ReadInfo {
  index: number;
  term: number;
  /** The captured membership; the core's confState is kept when the store has none. */
  confState?: ConfState;
}

export type SendEvent =
  /** The core wants a snapshot sent (message type Snap, to = the peer). */
  | { type: 'want'; msg: Message }
  | { type: 'opened'; peer: string; info: ReadInfo }
  | { type: 'openFailed'; peer: string; error: string }
  | { type: 'connected'; peer: string }
  | { type: 'dialFailed'; peer: string; error: string }
  /** The connection closed or failed (the adapter stops listening to it). */
  | { type: 'disconnected'; peer: string; reason: string }
  /** A decoded frame from the receiver (null: not a msgpack map). */
  | { type: 'frame'; peer: string; frame: RawFrame | null }
  | { type: 'chunkRead'; peer: string; data: Uint8Array }
  | { type: 'readEnd'; peer: string }
  | { type: 'readFailed'; peer: string; error: string }
  | { type: 'tokens'; peer: string; request: number }
  | { type: 'timer'; peer: string; timer: SendTimer }
  /** Stop a transfer (leadership lost, the peer left, shutdown). */
  | { type: 'cancel'; peer: string; reason: string };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type SendAction =
  /** Close any read this transfer holds and capture a fresh one. */
  | { type: 'open'; peer: string }
  /** Open a snapshot-channel connection (only while none is open for the peer). */
  | { type: 'dial'; peer: string }
  | { type: 'send'; peer: string; frame: SenderFrame }
  /** Close the connection at once and forget it: later events from it are not wanted. */
  | { type: 'hangUp'; peer: string }
  /** Read the next chunk of the open snapshot (one read outstanding at a time). */
  | { type: 'read'; peer: string }
  /** Ask the node's token bucket for `bytes`; answered by `tokens` with the same request number. */
  | { type: 'takeTokens'; peer: string; bytes: number; request: number }
  /** Withdraw the outstanding token request (its chunk will not be sent on this connection). */
  | { type: 'dropTokens'; peer: string }
  | { type: 'setTimer'; peer: string; timer: SendTimer; ms: number }
  | { type: 'clearTimer'; peer: string; timer: SendTimer }
  | { type: 'log'; level: LogLevel; msg: string; fields: Record<string, unknown> }
  /** The transfer ended: close its read and connection; tell the core (when still leader). */
  | { type: 'finished'; peer: string; ok: boolean; index: number; bytes: number; elapsedMs: number };

/** What /v1/status and the admin API show of one outgoing transfer. */
export interface SendStatus {
  peer: string;
  index: number;
  term: number;
  state: string;
  bytesDone: number;
  totalBytes: number | null;
  attempts: number;
  startedAtMs: number;
}

export interface SenderOptions {
  maxConcurrent: number;
  random: Random;
  faults?: SnapshotFaults;
}

/** Every outgoing snapshot transfer of one node, and the cap on how many run at once. */
export class SnapshotSender {
  private readonly active = new Map<string, Transfer>();
  private readonly queue: Message[] = [];

  constructor(private readonly opts: SenderOptions) {}

  /** Handles one event at time `nowMs`; returns what the driver must do, in order. */
  step(e: SendEvent, nowMs: number): SendAction[] {
    const out: SendAction[] = [];
    if (e.type === 'want') this.want(e.msg, nowMs, out);
    else if (e.type === 'cancel' && !this.active.has(e.peer)) this.dequeue(e.peer, out);
    else {
      const t = this.active.get(e.peer);
      if (!t) return out;
      t.step(e, nowMs, out);
      if (t.isFinished()) this.release(e.peer, nowMs, out);
    }
    return out;
  }

  /** The lowest snapshot index being sent (compaction must keep the log after it), or null. */
  heldIndex(): number | null {
    let held: number | null = null;
    for (const t of this.active.values()) if (t.index > 0) held = held === null ? t.index : Math.min(held, t.index);
    return held;
  }

  status(): SendStatus[] {
    return [...this.active.values()].map((t) => t.status());
  }

  /** Peers with a transfer running or queued. */
  peers(): string[] {
    return [...this.active.keys(), ...this.queue.map((m) => m.to)];
  }

  private want(m: Message, nowMs: number, out: SendAction[]): void {
    if (this.active.has(m.to) || this.queue.some((q) => q.to === m.to)) return; // already on its way
    if (this.active.size < this.opts.maxConcurrent) this.start(m, nowMs, out);
    else if (this.queue.length < MAX_QUEUED_TRANSFERS) {
      out.push({ type: 'log', level: 'info', msg: 'snapshot transfer queued: concurrent send limit reached', fields: { peer: m.to, active: [...this.active.keys()] } });
      this.queue.push(m);
    } else out.push({ type: 'finished', peer: m.to, ok: false, index: 0, bytes: 0, elapsedMs: 0 });
  }

  /** A queued transfer is cancelled before it started: the core hears it failed. */
  private dequeue(peer: string, out: SendAction[]): void {
    const i = this.queue.findIndex((m) => m.to === peer);
    if (i < 0) return;
    this.queue.splice(i, 1);
    out.push({ type: 'finished', peer, ok: false, index: 0, bytes: 0, elapsedMs: 0 });
  }

  private start(m: Message, nowMs: number, out: SendAction[]): void {
    const t = new Transfer(m, nowMs, this.opts);
    this.active.set(m.to, t);
    out.push({ type: 'open', peer: m.to });
  }

  private release(peer: string, nowMs: number, out: SendAction[]): void {
    this.active.delete(peer);
    const next = this.queue.shift();
    if (next) this.start(next, nowMs, out);
  }
}

type Phase = 'opening' | 'connecting' | 'beginning' | 'reopening' | 'sending' | 'finishing' | 'backoff' | 'finished';

interface Chunk {
  offset: number;
  data: Uint8Array;
  crc: number;
}

/** One outgoing transfer. */
class Transfer {
  private phase: Phase = 'opening';
  index = 0;
  private term = 0;
  private msg: Message;
  private hash: Hash = createHash('sha256');
  /** Read and not yet acknowledged, oldest first. */
  private buffer: Chunk[] = [];
  private readOffset = 0;
  private ackedOffset = 0;
  /** The next offset to send: below readOffset while resending after a rewind. */
  private resendFrom = 0;
  private exhausted = false;
  private totalBytes: number | null = null;
  private reading = false;
  /**
   * The chunk waiting for tokens, with its request number (a grant for another number is stale).
   * `chunk` is cleared when a rewind makes sending it pointless (the receiver wants earlier data).
   */
  private tokenWait: { chunk: Chunk | undefined; request: number } | undefined;
  private tokenRequests = 0;
  private stallArmed = false;
  private attempts = 0;
  /** Times this attempt asked for a fresh read because the receiver lost its copy. */
  private restarts = 0;
  private chunksSent = 0;
  private cutDone = false;
  /** Test-only fault bookkeeping: offsets already corrupted once. */
  private readonly corrupted = new Set<number>();
  /** Refusals (nacks) per offset in this transfer; past MAX_REFUSALS_PER_OFFSET the attempt fails. */
  private readonly refusals = new Map<number, number>();

  constructor(
    coreMsg: Message,
    private readonly startedAtMs: number,
    private readonly opts: SenderOptions,
  ) {
    this.msg = coreMsg;
  }

  private get peer(): string {
    return this.msg.to;
  }

  isFinished(): boolean {
    return this.phase === 'finished';
  }

  status(): SendStatus {
    return {
      peer: this.peer,
      index: this.index,
      term: this.term,
      state: this.phase,
      bytesDone: this.ackedOffset,
      totalBytes: this.totalBytes,
      attempts: this.attempts,
      startedAtMs: this.startedAtMs,
    };
  }

  step(e: Exclude<SendEvent, { type: 'want' }>, nowMs: number, out: SendAction[]): void {
    switch (e.type) {
      case 'opened':
        return this.onOpened(e.info, nowMs, out);
      case 'openFailed':
        out.push(this.log('error', 'snapshot transfer could not start', { err: e.error }));
        return this.finish(false, nowMs, out);
      case 'connected':
        if (this.phase !== 'connecting') return;
        this.phase = 'beginning';
        return this.sendBegin(out);
      case 'dialFailed':
        if (this.phase === 'connecting') this.attemptFailed(e.error, nowMs, out);
        return;
      case 'disconnected':
        if (this.connected()) this.attemptFailed(e.reason, nowMs, out);
        return;
      case 'frame':
        return this.onFrame(e.frame, nowMs, out);
      case 'chunkRead':
        return this.onChunkRead(e.data, nowMs, out);
      case 'readEnd':
        this.reading = false;
        this.exhausted = true;
        this.totalBytes = this.readOffset;
        return this.pump(nowMs, out);
      case 'readFailed':
        out.push(this.log('error', 'snapshot read failed', { err: e.error }));
        return this.finish(false, nowMs, out);
      case 'tokens':
        return this.onTokens(e.request, nowMs, out);
      case 'timer':
        return this.onTimer(e.timer, nowMs, out);
      case 'cancel':
        if (this.phase === 'finished') return;
        out.push(this.log('info', 'snapshot transfer cancelled', { reason: e.reason }));
        return this.finish(false, nowMs, out);
    }
  }

  /** True while a connection is open (in 'reopening' it waits for a fresh read before begin). */
  private connected(): boolean {
    return this.phase === 'beginning' || this.phase === 'reopening' || this.phase === 'sending' || this.phase === 'finishing';
  }

  private log(level: LogLevel, msg: string, fields: Record<string, unknown>): SendAction {
    return { type: 'log', level, msg, fields: { peer: this.peer, index: this.index, ...fields } };
  }

  /** A fresh read was captured: the core's message is rewritten to describe exactly it. */
  private onOpened(info: ReadInfo, nowMs: number, out: SendAction[]): void {
    // The captured state is at least as new as the core's snapshot point (it is the applied state
    // now), and the leader keeps every entry after it, so the follower continues from there.
    this.index = info.index;
    this.term = info.term;
    const confState = info.confState ?? this.msg.snapshot!.metadata.confState;
    this.msg = { ...this.msg, snapshot: { metadata: { index: info.index, term: info.term, confState }, data: new Uint8Array(0) } };
    if (this.phase === 'reopening') {
      this.phase = 'beginning';
      return this.sendBegin(out, true);
    }
    if (this.phase !== 'opening') return;
    out.push(this.log('info', 'snapshot transfer started', { term: this.term }));
    this.nextAttempt(nowMs, out);
  }

  private nextAttempt(_nowMs: number, out: SendAction[]): void {
    this.attempts++;
    this.restarts = 0;
    this.phase = 'connecting';
    out.push({ type: 'dial', peer: this.peer });
  }

  /** Announces the snapshot; `fresh` asks the receiver to drop any copy it stages and start over. */
  private sendBegin(out: SendAction[], fresh = false): void {
    out.push({ type: 'send', peer: this.peer, frame: { t: 'begin', index: this.index, term: this.term, msg: this.msg, ...(fresh ? { fresh } : {}) } });
    this.armStall(out);
  }

  private onFrame(f: RawFrame | null, nowMs: number, out: SendAction[]): void {
    if (!this.connected() || this.phase === 'reopening') return; // racing a hang-up; or nothing was asked yet
    if (f === null) return this.attemptFailed('malformed frame on the snapshot channel', nowMs, out);
    if (this.phase === 'beginning') return this.onResume(f, nowMs, out);
    if (this.phase === 'finishing') {
      if (f.t === 'done') return this.succeed(nowMs, out);
      if (f.t === 'ack' || f.t === 'nack') return this.armStall(out); // late answers to chunks: all were acked already
      return this.attemptFailed(`receiver refused the snapshot: ${String(f.reason ?? f.t)}`, nowMs, out);
    }
    if (f.t === 'ack' && isIdx(f.offset)) {
      this.ackedOffset = Math.max(this.ackedOffset, f.offset);
      this.buffer = this.buffer.filter((c) => c.offset + c.data.length > this.ackedOffset);
      if (this.resendFrom < this.ackedOffset) this.resendFrom = this.ackedOffset;
    } else if (f.t === 'nack' && isIdx(f.offset)) {
      if (f.offset < this.ackedOffset || f.offset > this.readOffset) return this.pump(nowMs, out); // stale
      const refusals = (this.refusals.get(f.offset) ?? 0) + 1;
      this.refusals.set(f.offset, refusals);
      if (refusals > MAX_REFUSALS_PER_OFFSET) return this.attemptFailed(`the chunk at offset ${f.offset} was refused ${refusals - 1} times`, nowMs, out);
      out.push(this.log('warn', 'snapshot chunk refused by the receiver; resending', { offset: f.offset, reason: f.reason }));
      this.rewindTo(f.offset);
    } else if (f.t === 'fail') {
      return this.attemptFailed(`receiver failed: ${String(f.reason)}`, nowMs, out);
    } else {
      return this.attemptFailed(`unexpected frame ${String(f.t)}`, nowMs, out);
    }
    this.pump(nowMs, out);
  }

  /** The answer to begin: continue where the receiver stands, or start over from a fresh read. */
  private onResume(f: RawFrame, nowMs: number, out: SendAction[]): void {
    if (f.t !== 'resume' || !isIdx(f.offset)) return this.attemptFailed(`unexpected answer to begin: ${String(f.t)}`, nowMs, out);
    if (this.canResumeAt(f.offset)) {
      this.rewindTo(f.offset);
      if (f.offset > 0) out.push(this.log('info', 'snapshot transfer resumed', { offset: f.offset }));
      this.phase = 'sending';
      return this.pump(nowMs, out);
    }
    // The receiver stands where this read cannot continue: it lost its staged copy (restart,
    // failed check), or stages more of this snapshot than this read holds (an earlier transfer
    // that gave up). Start both over: a fresh read, and a begin that tells the receiver so.
    if (this.restarts > 0) return this.attemptFailed(`receiver asks for offset ${f.offset} of a fresh snapshot`, nowMs, out);
    this.restarts++;
    out.push(this.log('info', 'snapshot transfer restarts from the beginning', { offset: f.offset }));
    if (this.readOffset === 0 && !this.reading) return this.sendBegin(out, true); // nothing read yet: this read is fresh
    this.disarmStall(out);
    this.buffer = [];
    this.readOffset = 0;
    this.ackedOffset = 0;
    this.resendFrom = 0;
    this.exhausted = false;
    this.totalBytes = null;
    this.hash = createHash('sha256');
    this.reading = false; // a read still outstanding belongs to the old snapshot: its result is dropped
    this.phase = 'reopening';
    out.push({ type: 'open', peer: this.peer });
  }

  private canResumeAt(offset: number): boolean {
    if (offset > this.readOffset) return false;
    const first = this.buffer[0]?.offset ?? this.readOffset;
    return offset >= first;
  }

  private rewindTo(offset: number): void {
    if (this.tokenWait?.chunk && this.tokenWait.chunk.offset >= offset) this.tokenWait.chunk = undefined;
    this.buffer = this.buffer.filter((c) => c.offset + c.data.length > offset);
    this.ackedOffset = Math.max(this.ackedOffset, offset); // the receiver holds everything before offset
    this.resendFrom = offset;
  }

  private onChunkRead(data: Uint8Array, nowMs: number, out: SendAction[]): void {
    if (!this.reading) return; // the read of a snapshot dropped by a restart
    this.reading = false;
    const c: Chunk = { offset: this.readOffset, data, crc: crc32(data) };
    this.hash.update(data);
    this.readOffset += data.length;
    this.buffer.push(c);
    this.pump(nowMs, out);
  }

  /**
   * Sends what the window allows: a buffered chunk being resent, or the next one read. Waits (for
   * a read, tokens, or the receiver's answers) when it cannot; sends end once everything read was
   * acknowledged and the read is exhausted.
   */
  private pump(_nowMs: number, out: SendAction[]): void {
    if (this.phase !== 'sending' || this.reading || this.tokenWait) return;
    // In flight: sent (before resendFrom) and not yet acknowledged.
    const inFlight = this.buffer.filter((c) => c.offset >= this.ackedOffset && c.offset < this.resendFrom).length;
    if (inFlight < SEND_WINDOW_CHUNKS) {
      const next = this.buffer.find((c) => c.offset === this.resendFrom);
      if (next) {
        this.resendFrom += next.data.length;
        this.disarmStall(out);
        this.tokenWait = { chunk: next, request: ++this.tokenRequests };
        out.push({ type: 'takeTokens', peer: this.peer, bytes: next.data.length, request: this.tokenRequests });
        return;
      }
      if (!this.exhausted) {
        this.disarmStall(out);
        this.reading = true;
        out.push({ type: 'read', peer: this.peer });
        return;
      }
    }
    if (this.exhausted && this.ackedOffset >= this.readOffset) {
      out.push({ type: 'send', peer: this.peer, frame: { t: 'end', total: this.readOffset, sha256: this.hash.copy().digest() } });
      this.phase = 'finishing';
    }
    this.armStall(out);
  }

  private onTokens(request: number, nowMs: number, out: SendAction[]): void {
    const w = this.tokenWait;
    if (!w || w.request !== request) return; // a grant for a request an interrupted attempt left behind
    this.tokenWait = undefined;
    if (this.phase !== 'sending') return;
    if (w.chunk) this.sendChunk(w.chunk, nowMs, out);
    else this.pump(nowMs, out); // rewound while waiting: the tokens are spent, the chunk is not sent
  }

  private sendChunk(c: Chunk, nowMs: number, out: SendAction[]): void {
    this.chunksSent++;
    const f = this.opts.faults ?? {};
    let data = c.data;
    // Each chunk is corrupted at most once: counting sends alone can land on the same chunk at
    // every resend (three sends per rewind cycle with N = 3) and never let it through.
    if (f.corruptEveryNthChunk && this.chunksSent % f.corruptEveryNthChunk === 0 && data.length > 0 && !this.corrupted.has(c.offset)) {
      this.corrupted.add(c.offset);
      data = Uint8Array.from(data);
      data[0] = data[0]! ^ 0xff; // the CRC was computed over the original bytes
    }
    out.push({ type: 'send', peer: this.peer, frame: { t: 'chunk', offset: c.offset, data, crc: c.crc } });
    if (f.cutAfterChunks && !this.cutDone && this.chunksSent >= f.cutAfterChunks) {
      this.cutDone = true;
      return this.attemptFailed('fault injection: connection cut', nowMs, out);
    }
    this.pump(nowMs, out);
  }

  private onTimer(timer: SendTimer, nowMs: number, out: SendAction[]): void {
    if (timer === 'backoff' && this.phase === 'backoff') return this.nextAttempt(nowMs, out);
    if (timer === 'stall' && this.stallArmed && this.connected()) {
      this.stallArmed = false;
      this.attemptFailed(`no answer within ${STALL_TIMEOUT_MS} ms`, nowMs, out);
    }
  }

  private armStall(out: SendAction[]): void {
    this.stallArmed = true;
    out.push({ type: 'setTimer', peer: this.peer, timer: 'stall', ms: STALL_TIMEOUT_MS });
  }

  private disarmStall(out: SendAction[]): void {
    if (!this.stallArmed) return;
    this.stallArmed = false;
    out.push({ type: 'clearTimer', peer: this.peer, timer: 'stall' });
  }

  /** This connection is done for: hang up, then redial after a back-off or give up. */
  private attemptFailed(reason: string, nowMs: number, out: SendAction[]): void {
    out.push(this.log('warn', 'snapshot transfer interrupted', { attempt: this.attempts, offset: this.ackedOffset, err: reason }));
    out.push({ type: 'hangUp', peer: this.peer });
    this.disarmStall(out);
    if (this.tokenWait) out.push({ type: 'dropTokens', peer: this.peer });
    this.tokenWait = undefined;
    if (this.attempts >= MAX_ATTEMPTS) {
      out.push(this.log('warn', 'snapshot transfer failed; the core will ask again later', { attempts: this.attempts }));
      return this.finish(false, nowMs, out);
    }
    this.phase = 'backoff';
    this.resendFrom = this.ackedOffset; // the next connection starts where the receiver answers
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** (this.attempts - 1));
    out.push({ type: 'setTimer', peer: this.peer, timer: 'backoff', ms: this.opts.random.int(Math.max(1, cap)) });
  }

  private succeed(nowMs: number, out: SendAction[]): void {
    out.push(this.log('info', 'snapshot transfer finished', { bytes: this.totalBytes, ms: Math.round(nowMs - this.startedAtMs), attempts: this.attempts }));
    this.finish(true, nowMs, out);
  }

  private finish(ok: boolean, nowMs: number, out: SendAction[]): void {
    if (this.connected()) out.push({ type: 'hangUp', peer: this.peer });
    if (this.tokenWait) out.push({ type: 'dropTokens', peer: this.peer });
    this.tokenWait = undefined;
    this.disarmStall(out);
    if (this.phase === 'backoff') out.push({ type: 'clearTimer', peer: this.peer, timer: 'backoff' });
    this.phase = 'finished';
    out.push({ type: 'finished', peer: this.peer, ok, index: this.index, bytes: this.totalBytes ?? this.ackedOffset, elapsedMs: nowMs - this.startedAtMs });
  }
}
