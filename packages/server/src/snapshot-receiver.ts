// The receiving side of snapshot catch-up as a state machine: events in, actions out. No sockets,
// disk, timers or randomness inside; the adapter (snapshots.ts) carries out the actions.
//
// A follower holds at most one staged snapshot (storage's SnapshotWriter). The leader connects,
// announces the snapshot (begin); the receiver stages it — or keeps the copy it already stages
// for the same leader, index and term, unless the begin says `fresh` — and answers resume
// {offset}. Each chunk is checked (offset, CRC-32): a good one is written and acknowledged, a bad
// or out-of-order one refused with nack {offset} (once per offset, or every chunk in flight
// would trigger another rewind).
// At end the whole stream is checked (length, SHA-256); then the Snap message goes to the core
// (`deliver`), whose Ready later asks the host to install: the staged state is swapped in
// atomically (`installWriter`). A stage the core never asks for is dropped after STAGED_TTL_MS.
//
// Contract with the driver: events are handled one at a time, and the result of an I/O action
// (`openWriter` → staged/stageFailed, `write` → written/writeFailed, `installWriter` →
// installed/installFailed) is the next event after the actions that asked for it: the machine
// asserts that (a frame arriving in between is a driver bug, not an operating condition).
import { createHash, type Hash } from 'node:crypto';
import type { Message } from '@quorumkv/raft';
import { crc32 } from './crc32.js';
import { isIdx, parseWireMessage, type RawFrame, type ReceiverFrame } from './snapshot-frames.js';
import type { LogLevel } from './snapshot-sender.js';

/** A staged incoming snapshot not installed within this time is dropped (unless the core still wants it). */
export const STAGED_TTL_MS = 5 * 60_000;
/** Close code of a refused snapshot stream (policy violation). */
export const REFUSED_CLOSE_CODE = 1008;

export type ReceiveEvent =
  /** An authenticated snapshot-channel connection from `peer` (the leader), named `conn` by the driver. */
  | { type: 'connected'; conn: number; peer: string }
  | { type: 'frame'; conn: number; frame: RawFrame | null }
  | { type: 'disconnected'; conn: number }
  | { type: 'staged'; bytesReceived: number }
  | { type: 'stageFailed'; error: string }
  | { type: 'written' }
  | { type: 'writeFailed'; error: string }
  /** Ready.snapshot: the host must install the snapshot at `index` before applying further. */
  | { type: 'install'; index: number }
  | { type: 'installed' }
  | { type: 'installFailed'; error: string }
  /** The stage's timer ran out; `corePendingIndex`: the snapshot the core holds pending to install, if any. */
  | { type: 'stageExpired'; stage: number; corePendingIndex: number | null }
  | { type: 'close' };

export type ReceiveAction =
  | { type: 'send'; conn: number; frame: ReceiverFrame }
  | { type: 'closeConn'; conn: number; code: number; reason: string }
  /** Start staging (the previous writer, if any, was aborted by an earlier action). */
  | { type: 'openWriter'; index: number; term: number }
  | { type: 'write'; data: Uint8Array }
  /** Drop the staged data (also after a failure; safe to repeat). */
  | { type: 'abortWriter' }
  | { type: 'installWriter' }
  /** The stream is complete and verified: step the Snap message into the core. */
  | { type: 'deliver'; msg: Message }
  | { type: 'setStageTimer'; stage: number; ms: number }
  /** The answer to an `install` event. */
  | { type: 'installDone'; ok: true; peer: string; elapsedMs: number }
  | { type: 'installDone'; ok: false; error: string }
  | { type: 'log'; level: LogLevel; msg: string; fields: Record<string, unknown> };

/** What /v1/status and the admin API show of the incoming snapshot. */
export interface ReceiveStatus {
  peer: string;
  index: number;
  term: number;
  state: 'receiving' | 'staged' | 'installing';
  bytesDone: number;
  totalBytes: number | null;
  startedAtMs: number;
}

interface Stage {
  id: number;
  peer: string;
  index: number;
  term: number;
  hash: Hash;
  bytesReceived: number;
  totalBytes: number | null;
  startedAtMs: number;
  complete: boolean;
}

interface Conn {
  peer: string;
  /** The Snap message of this connection's begin frame. */
  msg: Message | undefined;
  /** The stage this connection streams into (it may have been dropped since). */
  stage: Stage | undefined;
  /** The offset this connection last asked for again. */
  nackedAt: number;
}

/** An I/O action whose result must be the next event. */
type Awaiting =
  | { kind: 'stage'; conn: number; peer: string; index: number; term: number }
  | { kind: 'write'; conn: number; data: Uint8Array }
  | { kind: 'install'; stage: Stage; startedAtMs: number };

export class SnapshotReceiver {
  private stage: Stage | undefined;
  private readonly conns = new Map<number, Conn>();
  private awaiting: Awaiting | undefined;
  private stageIds = 0;
  private closed = false;

  /** `selfId`: this node (a begin frame's message must be addressed to it). */
  constructor(
    private readonly selfId: string,
    /** Test-only planted bug (the whole-node simulation): never set in production. */
    private readonly plant?: 'partial-snapshot-install',
  ) {}

  /** Handles one event at time `nowMs`; returns what the driver must do, in order. */
  step(e: ReceiveEvent, nowMs: number): ReceiveAction[] {
    const out: ReceiveAction[] = [];
    const isResult = e.type === 'staged' || e.type === 'stageFailed' || e.type === 'written' || e.type === 'writeFailed' || e.type === 'installed' || e.type === 'installFailed';
    // Invariant: an I/O action's result is the next event (see the contract above).
    if (isResult !== (this.awaiting !== undefined) && e.type !== 'close') {
      throw new Error(`snapshot receiver: event ${e.type} while ${this.awaiting ? `awaiting ${this.awaiting.kind}` : 'awaiting nothing'}`);
    }
    switch (e.type) {
      case 'connected':
        if (this.closed) out.push({ type: 'closeConn', conn: e.conn, code: 1001, reason: 'shutting down' });
        else this.conns.set(e.conn, { peer: e.peer, msg: undefined, stage: undefined, nackedAt: -1 });
        break;
      case 'frame':
        this.onFrame(e.conn, e.frame, nowMs, out);
        break;
      case 'disconnected':
        this.conns.delete(e.conn); // the stage stays: the leader resumes it on its next connection
        break;
      case 'staged':
      case 'stageFailed':
        this.onStaged(e, nowMs, out);
        break;
      case 'written':
      case 'writeFailed':
        this.onWritten(e, out);
        break;
      case 'install':
        this.onInstall(e.index, nowMs, out);
        break;
      case 'installed':
      case 'installFailed':
        this.onInstalled(e, nowMs, out);
        break;
      case 'stageExpired':
        this.onStageExpired(e.stage, e.corePendingIndex, out);
        break;
      case 'close':
        this.closed = true;
        this.awaiting = undefined;
        if (this.stage) this.dropStage(out);
        for (const conn of this.conns.keys()) out.push({ type: 'closeConn', conn, code: 1001, reason: 'shutting down' });
        this.conns.clear();
        break;
    }
    return out;
  }

  status(): ReceiveStatus[] {
    const s = this.stage;
    if (!s) return [];
    const state = this.awaiting?.kind === 'install' ? 'installing' : s.complete ? 'staged' : 'receiving';
    return [{ peer: s.peer, index: s.index, term: s.term, state, bytesDone: s.bytesReceived, totalBytes: s.totalBytes, startedAtMs: s.startedAtMs }];
  }

  private onFrame(connId: number, f: RawFrame | null, nowMs: number, out: ReceiveAction[]): void {
    const conn = this.conns.get(connId);
    if (!conn) return; // refused or gone already
    if (f === null) return this.refuse(connId, conn, 'malformed frame', out);
    switch (f.t) {
      case 'begin':
        return this.onBegin(connId, conn, f, out);
      case 'chunk':
        return this.onChunk(connId, conn, f, out);
      case 'end':
        return this.onEnd(connId, conn, f, out);
      default:
        return this.refuse(connId, conn, `unexpected frame type ${String(f.t)}`, out);
    }
  }

  /** Refuses the stream: says why, drops what it staged, closes the connection. */
  private refuse(connId: number, conn: Conn, reason: string, out: ReceiveAction[]): void {
    out.push({ type: 'log', level: 'warn', msg: 'snapshot stream refused', fields: { from: conn.peer, reason } });
    out.push({ type: 'send', conn: connId, frame: { t: 'fail', reason } });
    if (conn.stage && conn.stage === this.stage) this.dropStage(out);
    out.push({ type: 'closeConn', conn: connId, code: REFUSED_CLOSE_CODE, reason });
    this.conns.delete(connId);
  }

  private dropStage(out: ReceiveAction[]): void {
    this.stage = undefined;
    out.push({ type: 'abortWriter' });
  }

  private onBegin(connId: number, conn: Conn, f: RawFrame, out: ReceiveAction[]): void {
    if (!isIdx(f.index) || !isIdx(f.term)) return this.refuse(connId, conn, 'bad begin frame', out);
    const msg = parseWireMessage(f.msg, conn.peer, this.selfId);
    if (!msg || msg.snapshot!.metadata.index !== f.index) return this.refuse(connId, conn, 'bad snapshot message in begin frame', out);
    conn.msg = msg;
    const cur = this.stage;
    if (cur && f.fresh !== true && cur.peer === conn.peer && cur.index === f.index && cur.term === f.term) {
      conn.stage = cur;
      out.push({ type: 'send', conn: connId, frame: { t: 'resume', offset: cur.bytesReceived } });
      return;
    }
    if (cur) this.dropStage(out); // one stage at a time: the newest (or a fresh) announcement wins
    this.awaiting = { kind: 'stage', conn: connId, peer: conn.peer, index: f.index, term: f.term };
    out.push({ type: 'openWriter', index: f.index, term: f.term });
  }

  private onStaged(e: Extract<ReceiveEvent, { type: 'staged' | 'stageFailed' }>, nowMs: number, out: ReceiveAction[]): void {
    const a = this.awaiting;
    if (a?.kind !== 'stage') throw new Error(`snapshot receiver: ${e.type} while awaiting ${a?.kind}`);
    this.awaiting = undefined;
    const conn = this.conns.get(a.conn);
    if (e.type === 'stageFailed') {
      out.push({ type: 'abortWriter' });
      if (conn) this.refuse(a.conn, conn, e.error, out);
      return;
    }
    const st: Stage = { id: ++this.stageIds, peer: a.peer, index: a.index, term: a.term, hash: createHash('sha256'), bytesReceived: e.bytesReceived, totalBytes: null, startedAtMs: nowMs, complete: false };
    this.stage = st;
    out.push({ type: 'log', level: 'info', msg: 'receiving snapshot', fields: { from: a.peer, index: a.index, term: a.term } });
    if (!conn) return; // the connection went while the stage opened: the stage waits for the next
    conn.stage = st;
    out.push({ type: 'send', conn: a.conn, frame: { t: 'resume', offset: st.bytesReceived } });
  }

  private onChunk(connId: number, conn: Conn, f: RawFrame, out: ReceiveAction[]): void {
    const st = conn.stage;
    if (!st) return this.refuse(connId, conn, 'chunk before begin', out);
    if (st !== this.stage) return this.refuse(connId, conn, 'the staged snapshot was dropped', out);
    if (!isIdx(f.offset) || !(f.data instanceof Uint8Array) || !isIdx(f.crc)) return this.refuse(connId, conn, 'bad chunk frame', out);
    const received = st.bytesReceived;
    if (f.offset + f.data.length <= received) return; // a duplicate of data we have: nothing to say
    if (f.offset !== received) {
      // Out of order (chunks sent before the sender saw our last nack): ask once per offset.
      if (conn.nackedAt !== received) {
        conn.nackedAt = received;
        out.push({ type: 'send', conn: connId, frame: { t: 'nack', offset: received, reason: `expected offset ${received}, got ${f.offset}` } });
      }
      return;
    }
    if (crc32(f.data) !== f.crc) {
      out.push({ type: 'log', level: 'warn', msg: 'snapshot chunk failed its checksum; asking for it again', fields: { from: conn.peer, offset: f.offset } });
      conn.nackedAt = received;
      out.push({ type: 'send', conn: connId, frame: { t: 'nack', offset: received, reason: 'crc mismatch' } });
      return;
    }
    conn.nackedAt = -1;
    this.awaiting = { kind: 'write', conn: connId, data: f.data };
    out.push({ type: 'write', data: f.data });
  }

  /** Planted bug: the stream is delivered as complete after its first chunk, so the core installs part of a snapshot. */
  private plantedPartialDeliver(connId: number, out: ReceiveAction[]): void {
    const conn = this.conns.get(connId);
    const st = this.stage;
    if (!conn?.msg || !st || conn.stage !== st || st.complete || st.bytesReceived === 0 || this.awaiting) return;
    st.complete = true;
    st.totalBytes = st.bytesReceived;
    out.push({ type: 'log', level: 'warn', msg: 'planted bug: a snapshot stream is delivered as complete after its first chunk', fields: { from: conn.peer, bytes: st.bytesReceived } });
    out.push({ type: 'deliver', msg: conn.msg });
  }

  private onWritten(e: Extract<ReceiveEvent, { type: 'written' | 'writeFailed' }>, out: ReceiveAction[]): void {
    const a = this.awaiting;
    if (a?.kind !== 'write') throw new Error(`snapshot receiver: ${e.type} while awaiting ${a?.kind}`);
    this.awaiting = undefined;
    const conn = this.conns.get(a.conn);
    const st = this.stage;
    if (e.type === 'writeFailed') {
      if (conn) this.refuse(a.conn, conn, e.error, out);
      else if (st) this.dropStage(out);
      return;
    }
    // Invariant: a write is only asked for the current stage, and nothing replaces it meanwhile.
    if (!st) throw new Error('snapshot receiver: a chunk was written with no stage');
    st.hash.update(a.data);
    st.bytesReceived += a.data.length;
    if (conn) out.push({ type: 'send', conn: a.conn, frame: { t: 'ack', offset: st.bytesReceived } });
    if (this.plant === 'partial-snapshot-install') this.plantedPartialDeliver(a.conn, out);
  }

  private onEnd(connId: number, conn: Conn, f: RawFrame, out: ReceiveAction[]): void {
    const st = conn.stage;
    if (!st || !conn.msg) return this.refuse(connId, conn, 'end before begin', out);
    if (st !== this.stage) return this.refuse(connId, conn, 'the staged snapshot was dropped', out);
    if (!isIdx(f.total) || !(f.sha256 instanceof Uint8Array)) return this.refuse(connId, conn, 'bad end frame', out);
    const digest = st.hash.copy().digest();
    if (f.total !== st.bytesReceived || !digest.equals(Buffer.from(f.sha256))) {
      return this.refuse(connId, conn, `snapshot stream failed its whole-stream check (${st.bytesReceived} of ${f.total} bytes)`, out);
    }
    st.totalBytes = f.total;
    if (!st.complete) {
      st.complete = true;
      out.push({ type: 'setStageTimer', stage: st.id, ms: STAGED_TTL_MS });
    }
    out.push({ type: 'deliver', msg: conn.msg });
    out.push({ type: 'send', conn: connId, frame: { t: 'done' } });
    out.push({ type: 'log', level: 'info', msg: 'snapshot received and verified', fields: { from: conn.peer, index: st.index, bytes: f.total } });
  }

  private onInstall(index: number, nowMs: number, out: ReceiveAction[]): void {
    const st = this.stage;
    if (!st || st.index !== index || !st.complete) {
      out.push({ type: 'installDone', ok: false, error: `no staged snapshot for index ${index}` });
      return;
    }
    this.awaiting = { kind: 'install', stage: st, startedAtMs: nowMs };
    out.push({ type: 'installWriter' });
  }

  private onInstalled(e: Extract<ReceiveEvent, { type: 'installed' | 'installFailed' }>, nowMs: number, out: ReceiveAction[]): void {
    const a = this.awaiting;
    if (a?.kind !== 'install') throw new Error(`snapshot receiver: ${e.type} while awaiting ${a?.kind}`);
    this.awaiting = undefined;
    const st = a.stage;
    if (this.stage === st) this.stage = undefined;
    for (const c of this.conns.values()) if (c.stage === st) c.stage = undefined;
    if (e.type === 'installFailed') {
      out.push({ type: 'abortWriter' });
      out.push({ type: 'log', level: 'error', msg: 'snapshot install failed; the staged copy is dropped', fields: { from: st.peer, index: st.index, err: e.error } });
      out.push({ type: 'installDone', ok: false, error: e.error });
      return;
    }
    const elapsedMs = nowMs - a.startedAtMs;
    out.push({ type: 'log', level: 'info', msg: 'snapshot installed (atomic swap); replaying the log after it', fields: { from: st.peer, index: st.index, ms: Math.round(elapsedMs) } });
    out.push({ type: 'installDone', ok: true, peer: st.peer, elapsedMs });
  }

  /** The core ignores a snapshot it does not need (it already has the entries): drop the stage then. */
  private onStageExpired(stageId: number, corePendingIndex: number | null, out: ReceiveAction[]): void {
    const st = this.stage;
    if (!st || st.id !== stageId || corePendingIndex === st.index) return;
    out.push({ type: 'log', level: 'info', msg: 'snapshot not needed by the core; dropping the staged copy', fields: { from: st.peer, index: st.index } });
    this.dropStage(out);
  }
}
