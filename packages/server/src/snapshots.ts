// Snapshots: log compaction, and catch-up of a follower that needs compacted entries, built so that
// recovery never starves the healthy nodes (DESIGN.md "Snapshots and catch-up").
//
//  - Compaction: after `snapshotEntries` applied entries (or `snapshotLogBytes` of log) the node
//    records a snapshot point in the core's log and drops entries older than `snapshotKeepEntries`
//    behind it, on disk and in memory — fewer when those entries hold more than
//    `snapshotKeepBytes` (the core keeps the log in memory: large values must not multiply it).
//  - Sending: when the core wants to send a snapshot (message type Snap), the data is streamed on
//    its OWN connection (the transport's snapshot channel), never the Raft connection, so
//    heartbeats and appends to other followers never queue behind chunks. The stream is a
//    consistent LevelDB snapshot read in fixed-size chunks, each with a CRC-32, the whole with a
//    SHA-256; throttled by one token bucket per node (bytes/s, adjustable at run time); at most
//    `maxConcurrentSnapshotSends` transfers at once (others wait in a queue); resumable from the
//    last acknowledged offset after a reconnect; a failed connection is retried with jittered
//    exponential back-off, a bounded number of times.
//  - Receiving: chunks are verified and staged (storage's SnapshotWriter); a bad chunk is refused
//    and re-requested. Once complete and verified, the Snap message is handed to the core, whose
//    Ready then asks the host to install: the staged state is swapped in atomically.
//
// Frames on the snapshot channel are msgpack maps with a `t` field:
//   sender → receiver: begin {index, term, msg}, chunk {offset, data, crc}, end {total, sha256}
//   receiver → sender: resume {offset}, ack {offset}, nack {offset, reason}, done {}, fail {reason}
import { createHash, randomInt, type Hash } from 'node:crypto';
import { Packr } from 'msgpackr';
import type { WebSocket } from 'ws';
import { MessageType, type ConfState, type Message, type Snapshot } from '@quorumkv/raft';
import type { Membership, SnapshotReader, SnapshotWriter } from '@quorumkv/storage';
import { fitCloseReason } from '@quorumkv/transport';
import type { QuorumKvNode, SnapshotHooks } from './node.js';
import { TokenBucket } from './token-bucket.js';
import { crc32 } from './crc32.js';

/** How many bytes of unacknowledged chunks a sender keeps (and so may resend after a reconnect). */
const SEND_WINDOW_CHUNKS = 4;
/** A connection that makes no progress (no ack) for this long is dropped and redialled. */
const STALL_TIMEOUT_MS = 10_000;
/** Connection attempts per transfer before it is reported failed to the core. */
const MAX_ATTEMPTS = 8;
const BACKOFF_INITIAL_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** A chunk refused this often in one transfer means something is systematically wrong: give up the attempt. */
const MAX_REFUSALS_PER_OFFSET = 16;
/** Transfers waiting for a free slot. */
const MAX_QUEUED_TRANSFERS = 64;
/** A staged incoming snapshot not installed within this time is dropped. */
const STAGED_TTL_MS = 5 * 60_000;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const EMPTY = new Uint8Array(0);

export interface SnapshotChannel {
  /** Opens an authenticated snapshot-channel connection to a peer. */
  dial(peerId: string): Promise<WebSocket>;
}

/** Test-only fault injection, enabled by hidden server flags (never in production). */
export interface SnapshotFaults {
  /** Corrupt the bytes (after computing the CRC) of every Nth chunk sent, once per chunk. */
  corruptEveryNthChunk?: number;
  /** Drop the connection after sending this many chunks (once per transfer). */
  cutAfterChunks?: number;
}

export interface TransferStatus {
  peer: string;
  direction: 'send' | 'receive';
  index: number;
  term: number;
  state: string;
  bytesDone: number;
  /** Known once the whole snapshot was read (sender) or announced (receiver); else an estimate or null. */
  totalBytes: number | null;
  rateBytesPerSec: number;
  etaSec: number | null;
  attempts: number;
  startedAtMs: number;
}

export class SnapshotManager implements SnapshotHooks {
  private readonly bucket: TokenBucket;
  private readonly active = new Map<string, OutgoingTransfer>();
  private readonly queue: Message[] = [];
  private readonly incoming = new Map<string, IncomingState>();
  private lastSnapshotIndex: number;
  private bytesSinceSnapshot = 0;
  private compacting = false;
  private closed = false;

  constructor(
    readonly node: QuorumKvNode,
    private readonly channel: SnapshotChannel,
    readonly faults: SnapshotFaults = {},
  ) {
    this.bucket = new TokenBucket(node.cfg.snapshotRateBytesPerSec, node.cfg.snapshotChunkBytes);
    this.lastSnapshotIndex = node.mem.snapshot().metadata.index;
  }

  get rateBytesPerSec(): number {
    return this.bucket.rate;
  }

  /** Changes the send rate limit at run time (0 = unlimited). */
  setRate(bytesPerSec: number): void {
    this.bucket.setRate(bytesPerSec);
    this.node.log.info({ bytesPerSec }, 'snapshot send rate changed');
  }

  // -----------------------------------------------------------------------------------------
  // Compaction.

  afterApply(appliedIndex: number, appliedBytes: number): void {
    this.bytesSinceSnapshot += appliedBytes;
    const cfg = this.node.cfg;
    const due = appliedIndex - this.lastSnapshotIndex >= cfg.snapshotEntries || this.bytesSinceSnapshot >= cfg.snapshotLogBytes;
    if (!due || this.compacting || this.closed) return;
    this.compacting = true;
    this.compact(appliedIndex)
      .catch((e: unknown) => this.node.log.error({ err: e }, 'log compaction failed'))
      .finally(() => {
        this.compacting = false;
      });
  }

  private async compact(applied: number): Promise<void> {
    const mem = this.node.mem;
    if (applied <= mem.snapshot().metadata.index || applied > mem.lastIndex()) return;
    mem.createSnapshot(applied, confStateOf(this.node.membership()), EMPTY);
    this.lastSnapshotIndex = applied;
    this.bytesSinceSnapshot = 0;
    // Never past a snapshot still being sent: the follower must catch up from the log after
    // installing it, or it would need another snapshot at once (and could chase the log forever
    // on a fast-moving cluster). Transfers are bounded in attempts, so the hold is too.
    const cfg = this.node.cfg;
    let compactTo = Math.max(applied - cfg.snapshotKeepEntries, keptByBytesFrom(mem, applied, cfg.snapshotKeepBytes));
    for (const t of this.active.values()) if (t.snapshotIndex > 0) compactTo = Math.min(compactTo, t.snapshotIndex);
    if (compactTo <= mem.firstIndex() - 1) return;
    const t0 = performance.now();
    await this.node.store.log.compact(compactTo); // synced: also makes every earlier apply durable
    if (compactTo > mem.firstIndex() - 1 && compactTo <= mem.snapshot().metadata.index) mem.compact(compactTo);
    this.node.log.info({ snapshotIndex: applied, compactedTo: compactTo, ms: Math.round(performance.now() - t0) }, 'log compacted');
  }

  // -----------------------------------------------------------------------------------------
  // Sending.

  /** The core asked for a snapshot to be sent to m.to. */
  send(m: Message): void {
    if (this.closed) return;
    if (this.active.has(m.to) || this.queue.some((q) => q.to === m.to)) return; // already on its way
    if (this.active.size < this.node.cfg.maxConcurrentSnapshotSends) this.startTransfer(m);
    else if (this.queue.length < MAX_QUEUED_TRANSFERS) {
      this.node.log.info({ peer: m.to, active: [...this.active.keys()] }, 'snapshot transfer queued: concurrent send limit reached');
      this.queue.push(m);
    } else this.node.raw.reportSnapshot(m.to, false);
  }

  private startTransfer(m: Message): void {
    const t = new OutgoingTransfer(this, m, this.bucket);
    this.active.set(m.to, t);
    void t.run().then((ok) => {
      this.active.delete(m.to);
      if (!this.closed && this.node.isLeader()) {
        this.node.raw.reportSnapshot(m.to, ok);
        this.node.schedule();
      }
      const next = this.queue.shift();
      if (next && !this.closed) this.startTransfer(next);
    });
  }

  dial(peer: string): Promise<WebSocket> {
    return this.channel.dial(peer);
  }

  // -----------------------------------------------------------------------------------------
  // Receiving.

  /** An authenticated snapshot-channel connection from `peer` (the leader). */
  acceptConnection(peer: string, ws: WebSocket): void {
    new IncomingConnection(this, peer, ws);
  }

  stagedFor(peer: string): IncomingState | undefined {
    return this.incoming.get(peer);
  }

  async stage(peer: string, index: number, term: number): Promise<IncomingState> {
    const cur = this.incoming.get(peer);
    if (cur && cur.writer.expected.index === index && cur.writer.expected.term === term && !cur.failed) return cur;
    for (const [p, s] of this.incoming) {
      this.incoming.delete(p);
      await s.writer.abort().catch(() => undefined);
    }
    const writer = await this.node.store.openSnapshotWriter({ index, term });
    const st: IncomingState = { writer, hash: createHash('sha256'), index, term, peer, startedAtMs: Date.now(), failed: false, complete: false };
    this.incoming.set(peer, st);
    this.node.log.info({ from: peer, index, term }, 'receiving snapshot');
    return st;
  }

  drop(st: IncomingState): void {
    st.failed = true;
    if (this.incoming.get(st.peer) === st) this.incoming.delete(st.peer);
    void st.writer.abort().catch(() => undefined);
  }

  /** The stream is complete and verified: hand the snapshot message to the core. */
  deliver(st: IncomingState, msg: Message): void {
    st.complete = true;
    this.node.raw.step(msg);
    this.node.schedule();
    // The core ignores a snapshot it does not need (it already has the entries): drop the stage then.
    setTimeout(() => {
      if (this.incoming.get(st.peer) === st && !st.installed) {
        const pending = this.node.raw.raft.log.unstable.snapshot;
        if (!pending || pending.metadata.index !== st.index) {
          this.node.log.info({ from: st.peer, index: st.index }, 'snapshot not needed by the core; dropping the staged copy');
          this.drop(st);
        }
      }
    }, STAGED_TTL_MS).unref();
  }

  /** Ready.snapshot: swap in the staged state atomically. */
  async install(snapshot: Snapshot): Promise<void> {
    const st = [...this.incoming.values()].find((s) => s.index === snapshot.metadata.index && s.complete);
    if (!st) throw new Error(`no staged snapshot for index ${snapshot.metadata.index}`);
    const t0 = performance.now();
    await st.writer.install();
    st.installed = true;
    this.incoming.delete(st.peer);
    this.lastSnapshotIndex = snapshot.metadata.index;
    this.bytesSinceSnapshot = 0;
    this.node.metrics.snapshotsInstalled.inc();
    this.node.log.info(
      { from: st.peer, index: snapshot.metadata.index, ms: Math.round(performance.now() - t0) },
      'snapshot installed (atomic swap); replaying the log after it',
    );
  }

  status(): TransferStatus[] {
    const out: TransferStatus[] = [...this.active.values()].map((t) => t.status());
    for (const s of this.incoming.values()) {
      const secs = Math.max(0.001, (Date.now() - s.startedAtMs) / 1000);
      const done = s.writer.bytesReceived();
      out.push({
        peer: s.peer,
        direction: 'receive',
        index: s.index,
        term: s.term,
        state: s.complete ? 'staged' : 'receiving',
        bytesDone: done,
        totalBytes: s.totalBytes ?? null,
        rateBytesPerSec: Math.round(done / secs),
        etaSec: null,
        attempts: 0,
        startedAtMs: s.startedAtMs,
      });
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.bucket.close();
    for (const t of this.active.values()) t.cancel();
    for (const s of this.incoming.values()) await s.writer.abort().catch(() => undefined);
    this.incoming.clear();
  }
}

interface IncomingState {
  writer: SnapshotWriter;
  hash: Hash;
  index: number;
  term: number;
  peer: string;
  startedAtMs: number;
  totalBytes?: number;
  failed: boolean;
  complete: boolean;
  installed?: boolean;
}

export function confStateOf(m: Membership): ConfState {
  return { voters: m.voters.map((v) => v.id), learners: m.learners.map((v) => v.id) };
}

function encode(frame: Record<string, unknown>): Buffer {
  return packr.pack(frame);
}

function decode(data: unknown): Record<string, unknown> | null {
  try {
    const buf = Array.isArray(data) ? Buffer.concat(data as Buffer[]) : Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    const v = packr.unpack(buf) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const isIdx = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// ---------------------------------------------------------------------------------------------
// One outgoing transfer.

class OutgoingTransfer {
  private reader: SnapshotReader | undefined;
  private iter: AsyncIterator<Uint8Array> | undefined;
  private hash = createHash('sha256');
  /** Unacknowledged chunks, oldest first. */
  private buffer: { offset: number; data: Uint8Array; crc: number }[] = [];
  private readOffset = 0;
  private ackedOffset = 0;
  private totalBytes: number | null = null;
  private attempts = 0;
  private chunksSent = 0;
  private cutDone = false;
  /** Test-only fault bookkeeping: offsets already corrupted once. */
  private readonly corrupted = new Set<number>();
  /** Refusals (nacks) per offset in this transfer; past MAX_REFUSALS_PER_OFFSET the attempt fails. */
  private readonly refusals = new Map<number, number>();
  private state = 'starting';
  private cancelled = false;
  private ws: WebSocket | undefined;
  private readonly startedAtMs = Date.now();
  private index = 0;
  private term = 0;
  private msg: Message;

  /** Index of the snapshot being sent (0 until it is opened). */
  get snapshotIndex(): number {
    return this.index;
  }

  constructor(
    private readonly mgr: SnapshotManager,
    coreMsg: Message,
    private readonly bucket: TokenBucket,
  ) {
    this.msg = coreMsg;
  }

  private get peer(): string {
    return this.msg.to;
  }

  cancel(): void {
    this.cancelled = true;
    this.ws?.terminate();
  }

  status(): TransferStatus {
    const secs = Math.max(0.001, (Date.now() - this.startedAtMs) / 1000);
    const rate = Math.round(this.ackedOffset / secs);
    const total = this.totalBytes;
    return {
      peer: this.peer,
      direction: 'send',
      index: this.index,
      term: this.term,
      state: this.state,
      bytesDone: this.ackedOffset,
      totalBytes: total,
      rateBytesPerSec: rate,
      etaSec: total !== null && rate > 0 ? Math.round((total - this.ackedOffset) / rate) : null,
      attempts: this.attempts,
      startedAtMs: this.startedAtMs,
    };
  }

  /** Streams the snapshot; resolves true when the receiver verified it. */
  async run(): Promise<boolean> {
    const log = this.mgr.node.log;
    const t0 = performance.now();
    try {
      await this.open();
      log.info({ peer: this.peer, index: this.index, term: this.term, rateBytesPerSec: this.mgr.rateBytesPerSec }, 'snapshot transfer started');
      while (!this.cancelled && this.mgr.node.isLeader()) {
        this.attempts++;
        try {
          if (await this.attempt()) {
            this.mgr.node.metrics.snapshotsSent.inc({ outcome: 'ok' });
            this.mgr.node.metrics.snapshotSendSeconds.observe((performance.now() - t0) / 1000);
            log.info({ peer: this.peer, index: this.index, bytes: this.totalBytes, ms: Math.round(performance.now() - t0), attempts: this.attempts }, 'snapshot transfer finished');
            return true;
          }
        } catch (e) {
          log.warn({ peer: this.peer, index: this.index, attempt: this.attempts, offset: this.ackedOffset, err: (e as Error).message }, 'snapshot transfer interrupted');
        }
        if (this.attempts >= MAX_ATTEMPTS) break;
        this.state = 'backoff';
        const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** (this.attempts - 1));
        await new Promise((r) => setTimeout(r, randomInt(Math.max(1, cap))));
      }
      this.mgr.node.metrics.snapshotsSent.inc({ outcome: 'failed' });
      log.warn({ peer: this.peer, index: this.index, attempts: this.attempts }, 'snapshot transfer failed; the core will ask again later');
      return false;
    } catch (e) {
      this.mgr.node.metrics.snapshotsSent.inc({ outcome: 'failed' });
      log.error({ peer: this.peer, err: e }, 'snapshot transfer could not start');
      return false;
    } finally {
      this.ws?.terminate();
      await this.reader?.close().catch(() => undefined);
    }
  }

  /** Captures a consistent snapshot and rewrites the core's message to describe exactly it. */
  private async open(): Promise<void> {
    this.reader = await this.mgr.node.store.openSnapshotReader({ chunkBytes: this.mgr.node.cfg.snapshotChunkBytes });
    this.iter = this.reader[Symbol.asyncIterator]();
    const info = this.reader.info;
    // The captured state is at least as new as the core's snapshot point (it is the applied state
    // now), and the leader keeps every entry after it, so the follower continues from there.
    this.index = info.index;
    this.term = info.term;
    const confState = info.membership ? confStateOf(info.membership) : this.msg.snapshot!.metadata.confState;
    this.msg = { ...this.msg, snapshot: { metadata: { index: info.index, term: info.term, confState }, data: EMPTY } };
  }

  /** One connection: resume, stream, finish. True when done; throws to retry. */
  private async attempt(): Promise<boolean> {
    this.state = 'connecting';
    const ws = await this.mgr.dial(this.peer);
    this.ws = ws;
    const inbox = new FrameInbox(ws);
    try {
      await this.begin(ws, inbox);
      this.state = 'sending';
      await this.stream(ws, inbox);
      ws.send(encode({ t: 'end', total: this.readOffset, sha256: this.hash.copy().digest() }));
      this.state = 'finishing';
      for (;;) {
        const fin = await inbox.next(STALL_TIMEOUT_MS);
        if (fin.t === 'done') return true;
        if (fin.t === 'ack' || fin.t === 'nack') continue; // late answers to chunks: all were acked already
        throw new Error(`receiver refused the snapshot: ${String(fin.reason ?? fin.t)}`);
      }
    } finally {
      inbox.close();
      ws.terminate();
    }
  }

  /** Announces the snapshot and positions the stream where the receiver wants it. */
  private async begin(ws: WebSocket, inbox: FrameInbox): Promise<void> {
    for (let restarts = 0; ; restarts++) {
      ws.send(encode({ t: 'begin', index: this.index, term: this.term, msg: wireMessage(this.msg) }));
      const resume = await inbox.next(STALL_TIMEOUT_MS);
      if (resume.t !== 'resume' || !isIdx(resume.offset)) throw new Error(`unexpected answer to begin: ${String(resume.t)}`);
      if (this.canResumeAt(resume.offset)) {
        this.rewindTo(resume.offset);
        if (resume.offset > 0) this.mgr.node.log.info({ peer: this.peer, index: this.index, offset: resume.offset }, 'snapshot transfer resumed');
        return;
      }
      // The receiver lost its staged copy (restart, failed check): start over from a fresh read.
      if (restarts > 0) throw new Error(`receiver asks for offset ${resume.offset} of a fresh snapshot`);
      this.mgr.node.log.info({ peer: this.peer, offset: resume.offset }, 'snapshot transfer restarts from the beginning');
      await this.restartRead();
    }
  }

  /**
   * Sends chunks within the window and handles acks until everything read was acknowledged and
   * the reader is exhausted. A nack rewinds to the receiver's offset; nacks for offsets already
   * acknowledged are stale and ignored.
   */
  private async stream(ws: WebSocket, inbox: FrameInbox): Promise<void> {
    let exhausted = false;
    for (;;) {
      // In flight: sent (before resendFrom) and not yet acknowledged.
      const inFlight = this.buffer.filter((c) => c.offset >= this.ackedOffset && c.offset < this.resendFrom).length;
      if (inFlight < SEND_WINDOW_CHUNKS && !(exhausted && this.resendFrom >= this.readOffset)) {
        const chunk = await this.nextChunk();
        if (chunk) {
          await this.sendChunk(ws, chunk);
          continue;
        }
        exhausted = true;
      }
      if (exhausted && this.ackedOffset >= this.readOffset) return;
      const f = await inbox.next(STALL_TIMEOUT_MS);
      if (f.t === 'ack' && isIdx(f.offset)) {
        this.ackedOffset = Math.max(this.ackedOffset, f.offset);
        this.buffer = this.buffer.filter((c) => c.offset + c.data.length > this.ackedOffset);
        if (this.resendFrom < this.ackedOffset) this.resendFrom = this.ackedOffset;
      } else if (f.t === 'nack' && isIdx(f.offset)) {
        if (f.offset < this.ackedOffset || f.offset > this.readOffset) continue; // stale
        const refusals = (this.refusals.get(f.offset) ?? 0) + 1;
        this.refusals.set(f.offset, refusals);
        if (refusals > MAX_REFUSALS_PER_OFFSET) throw new Error(`the chunk at offset ${f.offset} was refused ${refusals - 1} times`);
        this.mgr.node.log.warn({ peer: this.peer, offset: f.offset, reason: f.reason }, 'snapshot chunk refused by the receiver; resending');
        this.rewindTo(f.offset);
      } else if (f.t === 'fail') {
        throw new Error(`receiver failed: ${String(f.reason)}`);
      } else {
        throw new Error(`unexpected frame ${String(f.t)}`);
      }
    }
  }

  private canResumeAt(offset: number): boolean {
    if (offset > this.readOffset) return false;
    const first = this.buffer[0]?.offset ?? this.readOffset;
    return offset >= first;
  }

  private rewindTo(offset: number): void {
    if (!this.canResumeAt(offset)) throw new Error(`cannot resume at ${offset}: that data is no longer buffered`);
    this.buffer = this.buffer.filter((c) => c.offset + c.data.length > offset);
    this.ackedOffset = Math.max(this.ackedOffset, offset); // the receiver holds everything before offset
    this.resendFrom = offset;
  }

  /** Drops everything read so far and captures a fresh snapshot (the receiver starts from zero). */
  private async restartRead(): Promise<void> {
    await this.reader?.close().catch(() => undefined);
    this.buffer = [];
    this.readOffset = 0;
    this.ackedOffset = 0;
    this.resendFrom = 0;
    this.totalBytes = null;
    this.hash = createHash('sha256');
    await this.open();
  }

  private resendFrom = 0;

  /** The next chunk to send: a buffered one being resent, or a new one from the reader. */
  private async nextChunk(): Promise<{ offset: number; data: Uint8Array; crc: number } | undefined> {
    const buffered = this.buffer.find((c) => c.offset === this.resendFrom);
    if (buffered) {
      this.resendFrom += buffered.data.length;
      return buffered;
    }
    if (this.resendFrom < this.readOffset) throw new Error(`no buffered chunk at offset ${this.resendFrom}`);
    const r = await this.iter!.next();
    if (r.done) {
      this.totalBytes = this.readOffset;
      return undefined;
    }
    const data = r.value;
    const c = { offset: this.readOffset, data, crc: crc32(data) };
    this.hash.update(data);
    this.readOffset += data.length;
    this.resendFrom = this.readOffset;
    this.buffer.push(c);
    return c;
  }

  private async sendChunk(ws: WebSocket, c: { offset: number; data: Uint8Array; crc: number }): Promise<void> {
    await this.bucket.take(c.data.length);
    if (this.cancelled) throw new Error('cancelled');
    this.chunksSent++;
    const f = this.mgr.faults;
    let data = c.data;
    // Each chunk is corrupted at most once: counting sends alone can land on the same chunk at
    // every resend (three sends per rewind cycle with N = 3) and never let it through.
    if (f.corruptEveryNthChunk && this.chunksSent % f.corruptEveryNthChunk === 0 && data.length > 0 && !this.corrupted.has(c.offset)) {
      this.corrupted.add(c.offset);
      data = Uint8Array.from(data);
      data[0] = data[0]! ^ 0xff; // the CRC was computed over the original bytes
    }
    ws.send(encode({ t: 'chunk', offset: c.offset, data, crc: c.crc }));
    this.mgr.node.metrics.snapshotBytesSent.inc(c.data.length);
    if (f.cutAfterChunks && !this.cutDone && this.chunksSent >= f.cutAfterChunks) {
      this.cutDone = true;
      ws.terminate();
      throw new Error('fault injection: connection cut');
    }
  }
}

/** Serialises a Message for the begin frame (snapshot data travels separately). */
function wireMessage(m: Message): Record<string, unknown> {
  return { ...m, snapshot: m.snapshot ? { metadata: m.snapshot.metadata } : undefined };
}

function parseWireMessage(v: unknown, from: string, to: string): Message | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const snap = o.snapshot as { metadata?: { index?: unknown; term?: unknown; confState?: { voters?: unknown; learners?: unknown } } } | undefined;
  const md = snap?.metadata;
  const ids = (x: unknown) => Array.isArray(x) && x.every((i) => typeof i === 'string');
  if (o.type !== MessageType.Snap || !isIdx(o.term) || !md || !isIdx(md.index) || !isIdx(md.term) || !md.confState) return null;
  if (!ids(md.confState.voters) || !ids(md.confState.learners)) return null;
  if (o.from !== from || o.to !== to) return null;
  return {
    type: MessageType.Snap,
    from,
    to,
    term: o.term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: {
      metadata: { index: md.index, term: md.term, confState: { voters: md.confState.voters as string[], learners: md.confState.learners as string[] } },
      data: EMPTY,
    },
  };
}

/** Turns a WebSocket's messages into an awaitable queue of decoded frames. */
class FrameInbox {
  private frames: Record<string, unknown>[] = [];
  private waiter: { resolve: (f: Record<string, unknown>) => void; reject: (e: Error) => void } | undefined;
  private error: Error | undefined;

  constructor(private readonly ws: WebSocket) {
    ws.on('message', this.onMessage);
    ws.on('close', this.onClose);
    ws.on('error', this.onClose);
  }

  private readonly onMessage = (data: unknown): void => {
    const f = decode(data);
    if (!f) return this.fail(new Error('malformed frame on the snapshot channel'));
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(f);
    } else if (this.frames.length < 1024) this.frames.push(f);
    else this.fail(new Error('too many unread frames on the snapshot channel'));
  };

  private readonly onClose = (): void => this.fail(new Error('snapshot connection closed'));

  private fail(e: Error): void {
    this.error ??= e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(e);
    }
  }

  pending(): number {
    return this.frames.length;
  }

  next(timeoutMs: number): Promise<Record<string, unknown>> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  close(): void {
    this.ws.off('message', this.onMessage);
    this.ws.off('close', this.onClose);
    this.ws.off('error', this.onClose);
  }
}

// ---------------------------------------------------------------------------------------------
// The receiving side of one connection.

class IncomingConnection {
  private st: IncomingState | undefined;
  /** The offset this connection last asked for again (out-of-order chunks are nacked once per offset). */
  private nackedAt = -1;
  private msg: Message | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly mgr: SnapshotManager,
    private readonly peer: string,
    private readonly ws: WebSocket,
  ) {
    ws.on('message', (data) => {
      this.chain = this.chain.then(() => this.onFrame(data)).catch((e: unknown) => this.abort(String((e as Error).message ?? e)));
    });
    ws.on('error', () => ws.terminate());
  }

  private send(f: Record<string, unknown>): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(encode(f));
  }

  private abort(reason: string): void {
    this.mgr.node.log.warn({ from: this.peer, reason }, 'snapshot stream refused');
    this.send({ t: 'fail', reason });
    if (this.st) this.mgr.drop(this.st);
    this.ws.close(1008, fitCloseReason(reason));
  }

  private async onFrame(data: unknown): Promise<void> {
    const f = decode(data);
    if (!f) throw new Error('malformed frame');
    switch (f.t) {
      case 'begin':
        return this.onBegin(f);
      case 'chunk':
        return this.onChunk(f);
      case 'end':
        return this.onEnd(f);
      default:
        throw new Error(`unexpected frame type ${String(f.t)}`);
    }
  }

  private async onBegin(f: Record<string, unknown>): Promise<void> {
    if (!isIdx(f.index) || !isIdx(f.term)) throw new Error('bad begin frame');
    const msg = parseWireMessage(f.msg, this.peer, this.mgr.node.id);
    if (!msg || msg.snapshot!.metadata.index !== f.index) throw new Error('bad snapshot message in begin frame');
    this.msg = msg;
    this.st = await this.mgr.stage(this.peer, f.index, f.term);
    this.send({ t: 'resume', offset: this.st.writer.bytesReceived() });
  }

  private async onChunk(f: Record<string, unknown>): Promise<void> {
    const st = this.st;
    if (!st) throw new Error('chunk before begin');
    if (!isIdx(f.offset) || !(f.data instanceof Uint8Array) || !isIdx(f.crc)) throw new Error('bad chunk frame');
    const received = st.writer.bytesReceived();
    if (f.offset + f.data.length <= received) return; // a duplicate of data we have: nothing to say
    if (f.offset !== received) {
      // Out of order (chunks sent before the sender saw our last nack): ask once per offset, or
      // every chunk in flight would trigger another rewind (a nack storm).
      if (this.nackedAt !== received) {
        this.nackedAt = received;
        this.send({ t: 'nack', offset: received, reason: `expected offset ${received}, got ${f.offset}` });
      }
      return;
    }
    if (crc32(f.data) !== f.crc) {
      this.mgr.node.log.warn({ from: this.peer, offset: f.offset }, 'snapshot chunk failed its checksum; asking for it again');
      this.nackedAt = received;
      this.send({ t: 'nack', offset: received, reason: 'crc mismatch' });
      return;
    }
    this.nackedAt = -1;
    await st.writer.write(f.data);
    st.hash.update(f.data);
    this.send({ t: 'ack', offset: st.writer.bytesReceived() });
  }

  private async onEnd(f: Record<string, unknown>): Promise<void> {
    const st = this.st;
    if (!st || !this.msg) throw new Error('end before begin');
    if (!isIdx(f.total) || !(f.sha256 instanceof Uint8Array)) throw new Error('bad end frame');
    const digest = st.hash.copy().digest();
    if (f.total !== st.writer.bytesReceived() || !digest.equals(Buffer.from(f.sha256))) {
      throw new Error(`snapshot stream failed its whole-stream check (${st.writer.bytesReceived()} of ${f.total} bytes)`);
    }
    st.totalBytes = f.total;
    this.mgr.deliver(st, this.msg);
    this.send({ t: 'done' });
    this.mgr.node.log.info({ from: this.peer, index: st.index, bytes: f.total }, 'snapshot received and verified');
  }
}

/**
 * The lowest index a compaction must reach so that the entries kept behind `applied` hold at most
 * `maxBytes` of data: the entries (index, applied] it keeps fit in `maxBytes`.
 */
export function keptByBytesFrom(mem: { firstIndex(): number; entries(lo: number, hi: number, maxBytes: number): Array<{ data: Uint8Array }> }, applied: number, maxBytes: number): number {
  const first = mem.firstIndex();
  if (applied < first) return 0;
  const ents = mem.entries(first, applied + 1, Number.POSITIVE_INFINITY);
  let bytes = 0;
  for (let i = ents.length - 1; i >= 0; i--) {
    bytes += (ents[i] as { data: Uint8Array }).data.length;
    if (bytes > maxBytes) return first + i; // entry first+i does not fit: compact through it
  }
  return 0;
}
