// Snapshot catch-up, the production adapter: it wires the sender and receiver state machines
// (snapshot-sender.ts, snapshot-receiver.ts) to the transport's snapshot channel, the node's
// store, its token bucket and the injected clock, built so that recovery never starves the
// healthy nodes (DESIGN.md "Snapshots and catch-up"). Compaction is the host loop's decision
// (compaction.ts, log-compactor.ts `LogCompactor.step`); this module only says which snapshot index it holds.
//
//  - Sending: when the core wants to send a snapshot (message type Snap), the data is streamed on
//    its OWN connection (the transport's snapshot channel), never the Raft connection, so
//    heartbeats and appends to other followers never queue behind chunks. The stream is a
//    consistent snapshot read in fixed-size chunks, each with a CRC-32, the whole with a SHA-256;
//    throttled by one token bucket per node (bytes/s, adjustable at run time); at most
//    `maxConcurrentSnapshotSends` transfers at once (others wait in a queue); resumable from the
//    last acknowledged offset after a reconnect; a failed connection is retried with jittered
//    exponential back-off, a bounded number of times.
//  - Receiving: chunks are verified and staged (storage's SnapshotWriter); a bad chunk is refused
//    and re-requested. Once complete and verified, the Snap message is handed to the core, whose
//    Ready then asks the host to install: the staged state is swapped in atomically.
//
// The machines decide; this file only carries out their actions and feeds results back. Sender
// events are handled one at a time from a queue (an action's synchronous result waits its turn);
// receiver events run on one promise chain that awaits each I/O action and feeds its result next.
import type { Message, Snapshot } from '@quorumkv/raft';
import type { NodeStore, SnapshotReader, SnapshotWriter } from '@quorumkv/storage';
import { confStateOf } from './compaction.js';
import { fitCloseReason } from '@quorumkv/transport';
import type { Logger } from './logger.js';
import type { NodeMetrics } from './metrics.js';
import type { QuorumKvNode, SnapshotHooks } from './node.js';
import { decodeFrame, encodeFrame } from './snapshot-frames.js';
import { SnapshotReceiver, type ReceiveAction, type ReceiveEvent } from './snapshot-receiver.js';
import { SnapshotSender, type SendAction, type SendEvent, type SendTimer, type SnapshotFaults } from './snapshot-sender.js';
import { TokenBucket, type TokenRequest } from './token-bucket.js';
import type { Clock, Random, TimerHandle } from './world.js';

export type { SnapshotFaults } from './snapshot-sender.js';

/** The part of a WebSocket (package `ws`) a snapshot-channel connection needs; a simulated link fits too. */
export interface SnapshotSocket {
  send(data: Uint8Array): void;
  close(code: number, reason: string): void;
  terminate(): void;
  on(event: 'message', fn: (data: unknown) => void): unknown;
  on(event: 'close' | 'error', fn: () => void): unknown;
  off(event: 'message', fn: (data: unknown) => void): unknown;
  off(event: 'close' | 'error', fn: () => void): unknown;
}

export interface SnapshotChannel {
  /** Opens an authenticated snapshot-channel connection to a peer. */
  dial(peerId: string): Promise<SnapshotSocket>;
}

/** What the snapshot module needs of the node it serves. */
export interface SnapshotHost {
  readonly id: string;
  readonly log: Logger;
  readonly metrics: Pick<NodeMetrics, 'snapshotsSent' | 'snapshotBytesSent' | 'snapshotSendSeconds' | 'snapshotsInstalled'>;
  readonly store: Pick<NodeStore, 'openSnapshotReader' | 'openSnapshotWriter'>;
  isLeader(): boolean;
  /** Tells the core how a transfer it asked for ended (then runs the loop). */
  reportSnapshot(peer: string, ok: boolean): void;
  /** Steps a verified Snap message into the core (then runs the loop). */
  stepSnapshot(msg: Message): void;
  /** The snapshot index the core holds pending to install, if any. */
  pendingSnapshotIndex(): number | null;
}

export interface SnapshotOptions {
  chunkBytes: number;
  rateBytesPerSec: number;
  maxConcurrentSends: number;
  clock: Clock;
  random: Random;
  faults?: SnapshotFaults;
  /** Test-only planted bug for the whole-node simulation (host-world.ts HOST_PLANTS); never set in production. */
  plant?: 'partial-snapshot-install' | undefined;
}

export interface TransferStatus {
  peer: string;
  direction: 'send' | 'receive';
  index: number;
  term: number;
  state: string;
  bytesDone: number;
  /** Known once the whole snapshot was read (sender) or announced (receiver); else null. */
  totalBytes: number | null;
  rateBytesPerSec: number;
  etaSec: number | null;
  attempts: number;
  startedAtMs: number;
}

/** What one outgoing transfer holds outside its machine. */
interface SendResources {
  reader?: SnapshotReader;
  iter?: AsyncIterator<Uint8Array>;
  socket?: SnapshotSocket;
  /** Stops listening to `socket`. */
  detach?: () => void;
  token?: TokenRequest;
  readonly timers: Map<SendTimer, TimerHandle>;
}

/** Held send requests while paused, at most (far above any membership: one per peer). */
export const MAX_HELD_SENDS = 256;

/** The node's side of snapshots: the production driver of the sender and receiver machines. */
export class SnapshotManager implements SnapshotHooks {
  private readonly bucket: TokenBucket;
  private readonly clock: Clock;
  private readonly sender: SnapshotSender;
  private readonly receiver: SnapshotReceiver;
  private readonly sends = new Map<string, SendResources>();
  private sendQueue: SendEvent[] = [];
  private sendPumping = false;
  private readonly sockets = new Map<number, SnapshotSocket>();
  private connIds = 0;
  private writer: SnapshotWriter | undefined;
  private recvChain: Promise<void> = Promise.resolve();
  private readonly stageTimers = new Set<TimerHandle>();
  private installWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private closed = false;
  private ceilingBytesPerSec: number;
  /**
   * While sends are paused: the core's requests to send, one per peer (the latest), started on
   * resume. Bounded by the membership (one per peer) and MAX_HELD_SENDS.
   */
  private readonly held = new Map<string, Message>();

  constructor(
    private readonly host: SnapshotHost,
    private readonly channel: SnapshotChannel,
    private readonly opts: SnapshotOptions,
  ) {
    this.clock = opts.clock;
    this.ceilingBytesPerSec = opts.rateBytesPerSec;
    this.bucket = new TokenBucket(opts.rateBytesPerSec, opts.chunkBytes, opts.clock);
    this.sender = new SnapshotSender({ maxConcurrent: opts.maxConcurrentSends, random: opts.random, ...(opts.faults ? { faults: opts.faults } : {}) });
    this.receiver = new SnapshotReceiver(host.id, opts.plant);
  }

  /** The configured send rate limit (0 = unlimited): the adaptive throttle's ceiling. */
  get rateBytesPerSec(): number {
    return this.ceilingBytesPerSec;
  }

  /** The rate the token bucket grants now: the configured one, or what the adaptive throttle set. */
  get effectiveRateBytesPerSec(): number {
    return this.bucket.rate;
  }

  /** Changes the configured send rate limit at run time (0 = unlimited); the bucket follows at once. */
  setRate(bytesPerSec: number): void {
    this.ceilingBytesPerSec = bytesPerSec;
    this.bucket.setRate(bytesPerSec);
    this.host.log.info({ bytesPerSec }, 'snapshot send rate changed');
  }

  /**
   * The adaptive throttle's rate (catchup-throttle-loop.ts): the bucket grants this, never more
   * than the configured limit (0 = as configured). The operator's pause still wins.
   */
  setThrottledRate(bytesPerSec: number): void {
    const c = this.ceilingBytesPerSec;
    const r = bytesPerSec === 0 ? c : c === 0 ? bytesPerSec : Math.min(bytesPerSec, c);
    if (r !== this.bucket.rate) this.bucket.setRate(r);
  }

  /** True while a transfer runs or is queued (not counting ones held by the pause). */
  get sending(): boolean {
    return this.sender.peers().length > 0;
  }

  get sendsPaused(): boolean {
    return this.bucket.isPaused;
  }

  /**
   * Pauses or resumes every catch-up snapshot send of this node: while paused no transfer starts
   * (the core's requests are held, one per peer) and running ones send no chunk (the token
   * bucket grants nothing; their connections stay open and continue where they stood).
   */
  setSendsPaused(paused: boolean): void {
    if (paused === this.bucket.isPaused) return;
    this.bucket.setPaused(paused);
    this.host.log.warn({ held: [...this.held.keys()] }, paused ? 'snapshot sends paused' : 'snapshot sends resumed');
    if (paused) return;
    const held = [...this.held.values()];
    this.held.clear();
    for (const m of held) this.send(m);
  }

  /** The core asked for a snapshot to be sent to m.to. */
  send(m: Message): void {
    if (this.closed) return;
    if (!this.bucket.isPaused) return this.dispatchSend({ type: 'want', msg: m });
    if (this.held.has(m.to) || this.held.size < MAX_HELD_SENDS) this.held.set(m.to, m);
    else this.host.reportSnapshot(m.to, false); // more peers than any membership: the core asks again later
  }

  /** The lowest snapshot index being sent (compaction keeps the log after it), or null. */
  heldIndex(): number | null {
    return this.sender.heldIndex();
  }

  /** Stops the transfers (running or queued) to every peer `keep` says no to. */
  cancelSends(keep: (peer: string) => boolean, reason: string): void {
    for (const peer of [...this.held.keys()]) {
      if (keep(peer)) continue;
      this.held.delete(peer);
      if (!this.closed && this.host.isLeader()) this.host.reportSnapshot(peer, false);
    }
    // Queued ones first: cancelling a running one would start the next in the queue.
    for (const peer of this.sender.peers().reverse()) if (!keep(peer)) this.dispatchSend({ type: 'cancel', peer, reason });
  }

  /** An authenticated snapshot-channel connection from `peer` (the leader). */
  acceptConnection(peer: string, socket: SnapshotSocket): void {
    const conn = ++this.connIds;
    this.sockets.set(conn, socket);
    socket.on('message', (data) => void this.dispatchRecv({ type: 'frame', conn, frame: decodeFrame(data) }));
    socket.on('close', () => {
      this.sockets.delete(conn);
      void this.dispatchRecv({ type: 'disconnected', conn });
    });
    socket.on('error', () => socket.terminate());
    void this.dispatchRecv({ type: 'connected', conn, peer });
  }

  /** Ready.snapshot: swap in the staged state atomically. Rejects when there is none or the swap failed. */
  install(snapshot: Snapshot): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.recvChain = this.recvChain.then(async () => {
        this.installWaiter = { resolve, reject };
        await this.runRecv({ type: 'install', index: snapshot.metadata.index });
        if (this.installWaiter) reject(new Error('the snapshot receiver did not answer the install')); // programmer error
        this.installWaiter = undefined;
      });
    });
  }

  status(): TransferStatus[] {
    const now = this.clock.nowMs();
    const rate = (bytes: number, since: number) => Math.round(bytes / Math.max(0.001, (now - since) / 1000));
    const out: TransferStatus[] = this.sender.status().map((s) => {
      const r = rate(s.bytesDone, s.startedAtMs);
      const etaSec = s.totalBytes !== null && r > 0 ? Math.round((s.totalBytes - s.bytesDone) / r) : null;
      return { ...s, direction: 'send', rateBytesPerSec: r, etaSec };
    });
    for (const m of this.held.values()) {
      const meta = m.snapshot?.metadata;
      out.push({ peer: m.to, direction: 'send', index: meta?.index ?? 0, term: meta?.term ?? 0, state: 'paused', bytesDone: 0, totalBytes: null, rateBytesPerSec: 0, etaSec: null, attempts: 0, startedAtMs: now });
    }
    for (const s of this.receiver.status()) out.push({ ...s, direction: 'receive', rateBytesPerSec: rate(s.bytesDone, s.startedAtMs), etaSec: null, attempts: 0 });
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancelSends(() => false, 'shutting down');
    this.bucket.close();
    for (const t of this.stageTimers) this.clock.clearTimer(t);
    this.stageTimers.clear();
    await this.dispatchRecv({ type: 'close' });
  }

  // -----------------------------------------------------------------------------------------
  // Sending: one queue of events; actions run in order, results come back through the queue.

  private dispatchSend(e: SendEvent): void {
    this.sendQueue.push(e);
    if (this.sendPumping) return;
    this.sendPumping = true;
    try {
      for (let next = this.sendQueue.shift(); next; next = this.sendQueue.shift()) {
        for (const a of this.sender.step(next, this.clock.nowMs())) this.doSend(a);
      }
    } finally {
      this.sendPumping = false;
    }
  }

  private doSend(a: SendAction): void {
    if (a.type === 'log') return this.host.log[a.level]({ ...a.fields, rateBytesPerSec: this.bucket.rate }, a.msg);
    if (a.type === 'finished') return this.finishSend(a);
    const res = this.sends.get(a.peer) ?? this.newSendResources(a.peer);
    switch (a.type) {
      case 'open':
        return this.openRead(a.peer, res);
      case 'dial':
        return this.dial(a.peer, res);
      case 'send':
        res.socket?.send(encodeFrame(a.frame));
        if (a.frame.t === 'chunk') this.host.metrics.snapshotBytesSent.inc(a.frame.data.length);
        return;
      case 'hangUp':
        return hangUp(res);
      case 'read':
        return this.read(a.peer, res);
      case 'takeTokens':
        res.token = this.bucket.take(a.bytes, () => this.dispatchSend({ type: 'tokens', peer: a.peer, request: a.request }));
        return;
      case 'dropTokens':
        res.token?.cancel();
        res.token = undefined;
        return;
      case 'setTimer': {
        const old = res.timers.get(a.timer);
        if (old) this.clock.clearTimer(old);
        res.timers.set(a.timer, this.clock.setTimer(a.ms, () => {
          res.timers.delete(a.timer);
          this.dispatchSend({ type: 'timer', peer: a.peer, timer: a.timer });
        }));
        return;
      }
      case 'clearTimer': {
        const t = res.timers.get(a.timer);
        if (t) this.clock.clearTimer(t);
        res.timers.delete(a.timer);
        return;
      }
    }
  }

  private newSendResources(peer: string): SendResources {
    const res: SendResources = { timers: new Map() };
    this.sends.set(peer, res);
    return res;
  }

  /** True while `res` still belongs to the running transfer (results for an ended one are dropped). */
  private current(peer: string, res: SendResources): boolean {
    return this.sends.get(peer) === res;
  }

  private openRead(peer: string, res: SendResources): void {
    void res.reader?.close().catch(() => undefined);
    res.reader = undefined;
    res.iter = undefined;
    this.host.store.openSnapshotReader({ chunkBytes: this.opts.chunkBytes }).then(
      (reader) => {
        if (!this.current(peer, res) || res.reader) return void reader.close().catch(() => undefined);
        res.reader = reader;
        res.iter = reader[Symbol.asyncIterator]();
        const m = reader.info.membership;
        this.dispatchSend({ type: 'opened', peer, info: { index: reader.info.index, term: reader.info.term, ...(m ? { confState: confStateOf(m) } : {}) } });
      },
      (e: unknown) => {
        if (this.current(peer, res)) this.dispatchSend({ type: 'openFailed', peer, error: String((e as Error).message ?? e) });
      },
    );
  }

  private read(peer: string, res: SendResources): void {
    const iter = res.iter;
    if (!iter) return this.dispatchSend({ type: 'readFailed', peer, error: 'no snapshot read is open' });
    iter.next().then(
      (r) => {
        if (!this.current(peer, res) || res.iter !== iter) return; // the read was replaced or the transfer ended
        this.dispatchSend(r.done ? { type: 'readEnd', peer } : { type: 'chunkRead', peer, data: r.value });
      },
      (e: unknown) => {
        if (this.current(peer, res) && res.iter === iter) this.dispatchSend({ type: 'readFailed', peer, error: String((e as Error).message ?? e) });
      },
    );
  }

  private dial(peer: string, res: SendResources): void {
    if (!this.host.isLeader()) return this.dispatchSend({ type: 'cancel', peer, reason: 'no longer the leader' });
    this.channel.dial(peer).then(
      (socket) => {
        if (!this.current(peer, res) || this.closed) return socket.terminate();
        res.socket = socket;
        const onMessage = (data: unknown) => this.dispatchSend({ type: 'frame', peer, frame: decodeFrame(data) });
        const onClose = () => lost('snapshot connection closed');
        const onError = () => lost('snapshot connection failed');
        const lost = (reason: string) => {
          res.detach?.();
          this.dispatchSend({ type: 'disconnected', peer, reason });
        };
        res.detach = () => {
          res.detach = undefined;
          socket.off('message', onMessage);
          socket.off('close', onClose);
          socket.off('error', onError);
          socket.on('error', () => undefined); // a late error of a dropped socket must not go uncaught
        };
        socket.on('message', onMessage);
        socket.on('close', onClose);
        socket.on('error', onError);
        this.dispatchSend({ type: 'connected', peer });
      },
      (e: unknown) => {
        if (this.current(peer, res)) this.dispatchSend({ type: 'dialFailed', peer, error: String((e as Error).message ?? e) });
      },
    );
  }

  private finishSend(a: Extract<SendAction, { type: 'finished' }>): void {
    const res = this.sends.get(a.peer);
    this.sends.delete(a.peer);
    if (res) {
      hangUp(res);
      res.token?.cancel();
      for (const t of res.timers.values()) this.clock.clearTimer(t);
      void res.reader?.close().catch(() => undefined);
    }
    const m = this.host.metrics;
    m.snapshotsSent.inc({ outcome: a.ok ? 'ok' : 'failed' });
    if (a.ok) m.snapshotSendSeconds.observe(a.elapsedMs / 1000);
    if (!this.closed && this.host.isLeader()) this.host.reportSnapshot(a.peer, a.ok);
  }

  // -----------------------------------------------------------------------------------------
  // Receiving: one promise chain; each I/O action is awaited and its result is the next event.

  private dispatchRecv(e: ReceiveEvent): Promise<void> {
    this.recvChain = this.recvChain.then(() => this.runRecv(e));
    return this.recvChain;
  }

  private async runRecv(first: ReceiveEvent): Promise<void> {
    try {
      const events: ReceiveEvent[] = [first];
      for (let e = events.shift(); e; e = events.shift()) {
        for (const a of this.receiver.step(e, this.clock.nowMs())) {
          const result = await this.doRecv(a);
          if (result) events.push(result);
        }
      }
    } catch (e) {
      // A broken invariant of the receiver machine: a bug, not an operating condition.
      this.host.log.error({ err: e }, 'snapshot receiver failed');
    }
  }

  private async doRecv(a: ReceiveAction): Promise<ReceiveEvent | undefined> {
    const errorOf = (e: unknown) => String((e as Error).message ?? e);
    switch (a.type) {
      case 'send':
        this.sockets.get(a.conn)?.send(encodeFrame(a.frame));
        return undefined;
      case 'closeConn':
        this.sockets.get(a.conn)?.close(a.code, fitCloseReason(a.reason));
        this.sockets.delete(a.conn);
        return undefined;
      case 'openWriter':
        try {
          this.writer = await this.host.store.openSnapshotWriter({ index: a.index, term: a.term });
          return { type: 'staged', bytesReceived: this.writer.bytesReceived() };
        } catch (e) {
          return { type: 'stageFailed', error: errorOf(e) };
        }
      case 'write':
        try {
          await this.writer!.write(a.data);
          return { type: 'written' };
        } catch (e) {
          return { type: 'writeFailed', error: errorOf(e) };
        }
      case 'abortWriter': {
        const w = this.writer;
        this.writer = undefined;
        await w?.abort().catch(() => undefined);
        return undefined;
      }
      case 'installWriter':
        try {
          await this.writer!.install();
          this.writer = undefined;
          return { type: 'installed' };
        } catch (e) {
          return { type: 'installFailed', error: errorOf(e) };
        }
      case 'deliver':
        this.host.stepSnapshot(a.msg);
        return undefined;
      case 'setStageTimer': {
        const t = this.clock.setTimer(a.ms, () => {
          this.stageTimers.delete(t);
          void this.dispatchRecv({ type: 'stageExpired', stage: a.stage, corePendingIndex: this.host.pendingSnapshotIndex() });
        });
        this.stageTimers.add(t);
        return undefined;
      }
      case 'installDone':
        if (a.ok) this.host.metrics.snapshotsInstalled.inc();
        if (a.ok) this.installWaiter?.resolve();
        else this.installWaiter?.reject(new Error(a.error));
        this.installWaiter = undefined;
        return undefined;
      case 'log':
        this.host.log[a.level](a.fields, a.msg);
        return undefined;
    }
  }
}

function hangUp(res: SendResources): void {
  const s = res.socket;
  res.socket = undefined;
  res.detach?.();
  s?.terminate();
}

/** The snapshot module's view of a production node. */
export function snapshotHostOf(node: QuorumKvNode): SnapshotHost {
  return {
    id: node.id,
    log: node.log,
    metrics: node.metrics,
    store: node.store,
    isLeader: () => node.isLeader(),
    reportSnapshot: (peer, ok) => {
      node.raw.reportSnapshot(peer, ok);
      node.schedule();
    },
    stepSnapshot: (msg) => {
      node.raw.step(msg);
      node.schedule();
    },
    pendingSnapshotIndex: () => node.raw.raft.log.unstable.snapshot?.metadata.index ?? null,
  };
}
