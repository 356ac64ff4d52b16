// One directed link: this node's own outbound connection to one peer. It queues messages,
// flushes them as batched frames, pings to notice silent partitions, and redials with
// jittered exponential back-off. It never reads data: the acceptor sends only pongs.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { Message } from '@quorumkv/raft';
import { backoffDelayMs } from './backoff.js';
import { CloseCode } from './close-codes.js';
import { closeWithGrace } from './close.js';
import { encodeFrame, estimateMessageBytes, FRAME_OVERHEAD_BYTES } from './codec.js';
import { assert } from './errors.js';
import { createHelloHeader, HELLO_HEADER } from './handshake.js';
import type { TransportLimits } from './limits.js';
import { peerUrl } from './peers.js';
import type { PeerTls } from './types.js';
import { decodePong, LivenessTracker, PongKind } from './progress.js';
import type { LinkState, PeerStats, TransportLogger } from './types.js';

/** What a link needs from its transport. */
export interface LinkContext {
  selfId: string;
  clusterSecret: string;
  clusterId: () => string | null;
  /** This node's incarnation id, sent in every hello. */
  incarnation: string;
  limits: TransportLimits;
  logger: TransportLogger;
  random: () => number;
  nowMs: () => number;
  /** Asks for `flush()` at the end of this event-loop turn. */
  markDirty: (link: OutboundLink) => void;
  peerDown: (peerId: string) => void;
  /** Peer TLS, when configured: dials use wss:// and these options. */
  tls: PeerTls | undefined;
}

/** The acceptor never sends data messages; a tiny maxPayload makes any attempt cheap to refuse. */
const OUTBOUND_MAX_PAYLOAD_BYTES = 1024;

/** Masking protects browsers' intermediaries; between nodes it is pure cost, so use a zero mask (ws then skips it). */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** One open (or opening) WebSocket and what belongs to it alone. */
interface Connection {
  ws: WebSocket;
  /** The TCP socket under `ws`, known from the upgrade response. */
  socket: Socket | null;
  /** The WebSocket upgrade completed. */
  opened: boolean;
  /**
   * The peer answered with a pong, so it accepted our hello (a refused connection gets a close
   * frame, never a pong). Only then is the link 'open' and frames flushed into it.
   */
  accepted: boolean;
  unflushedBytes: number;
  /** socket.bytesWritten when the connection opened (the upgrade request is not frame bytes). */
  baselineWrittenBytes: number;
  liveness: LivenessTracker | null;
  tickTimer: NodeJS.Timeout | null;
  /** When the unanswered ping was sent (performance.now()), or null. */
  pingSentAtMs: number | null;
}

type OutboundCounters = Pick<
  PeerStats,
  'sentMessages' | 'sentFrames' | 'sentBytes' | 'droppedQueueFull' | 'droppedDisconnected' | 'droppedTooLarge' | 'reconnects' | 'rttMs'
>;

/** The outbound half of a peer: see the file comment. Internal to the transport. */
export class OutboundLink {
  readonly peerId: string;
  readonly address: string;
  readonly #url: string;
  readonly #ctx: LinkContext;
  #state: LinkState = 'backoff';
  #conn: Connection | null = null;
  #queue: Message[] = [];
  #queueSizes: number[] = [];
  #queuedBytes = 0;
  /** Failed dials since the last accepted connection (one that answered with a pong). */
  #attempt = 0;
  #dials = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #closed: Promise<void> | null = null;
  readonly #counters: OutboundCounters = {
    sentMessages: 0, sentFrames: 0, sentBytes: 0, droppedQueueFull: 0, droppedDisconnected: 0,
    droppedTooLarge: 0, reconnects: 0, rttMs: null,
  };

  constructor(ctx: LinkContext, peerId: string, address: string) {
    this.#ctx = ctx;
    this.peerId = peerId;
    this.address = address;
    this.#url = peerUrl(address, ctx.tls !== undefined);
    this.#dial();
  }

  /** Queues `msg` for the next flush; false (and counted) when it cannot be accepted. */
  enqueue(msg: Message): boolean {
    const c = this.#counters;
    if (this.#state !== 'open' && this.#state !== 'connecting') {
      c.droppedDisconnected++;
      return false;
    }
    const { maxFrameBytes, maxQueuedMessages, maxQueuedBytes } = this.#ctx.limits;
    const bytes = estimateMessageBytes(msg);
    if (bytes > maxFrameBytes - FRAME_OVERHEAD_BYTES) {
      c.droppedTooLarge++;
      this.#ctx.logger.warn({ peer: this.peerId, bytes, maxFrameBytes, type: msg.type }, 'message larger than maxFrameBytes dropped');
      return false;
    }
    if (this.#queue.length >= maxQueuedMessages || this.#queuedBytes + bytes > maxQueuedBytes) {
      c.droppedQueueFull++;
      return false;
    }
    this.#queue.push(msg);
    this.#queueSizes.push(bytes);
    this.#queuedBytes += bytes;
    if (this.#state === 'open') this.#ctx.markDirty(this);
    return true;
  }

  /** Sends queued messages as frames of at most maxFrameBytes, while the socket keeps up. */
  flush(): void {
    const conn = this.#conn;
    if (this.#state !== 'open' || conn === null) return;
    const { maxFrameBytes, maxUnflushedBytes } = this.#ctx.limits;
    while (this.#queue.length > 0) {
      let count = 0;
      let estimate = FRAME_OVERHEAD_BYTES;
      while (count < this.#queue.length && estimate + (this.#queueSizes[count] as number) <= maxFrameBytes) {
        estimate += this.#queueSizes[count] as number;
        count++;
      }
      // Invariant: enqueue refused any message that cannot fit a frame alone.
      assert(count > 0, `message of ${this.#queueSizes[0]} bytes queued for ${this.peerId} cannot fit a frame`);
      if (conn.unflushedBytes > 0 && conn.unflushedBytes + estimate > maxUnflushedBytes) return; // resumed by a write callback
      this.#sendFrame(conn, count, estimate);
    }
  }

  #sendFrame(conn: Connection, count: number, estimate: number): void {
    const batch = count === this.#queue.length ? this.#queue : this.#queue.slice(0, count);
    if (batch === this.#queue) {
      this.#queue = [];
      this.#queueSizes = [];
      this.#queuedBytes = 0;
    } else {
      this.#queue.splice(0, count);
      this.#queueSizes.splice(0, count);
      this.#queuedBytes -= estimate - FRAME_OVERHEAD_BYTES;
    }
    const frame = encodeFrame(batch);
    const c = this.#counters;
    c.sentFrames++;
    c.sentMessages += count;
    c.sentBytes += frame.byteLength;
    conn.unflushedBytes += frame.byteLength;
    conn.ws.send(frame, { binary: true }, () => {
      conn.unflushedBytes -= frame.byteLength;
      if (this.#conn === conn && this.#queue.length > 0) this.#ctx.markDirty(this);
    });
  }

  #dial(): void {
    this.#reconnectTimer = null;
    if (this.#state === 'closed') return;
    if (this.#dials++ > 0) this.#counters.reconnects++;
    this.#state = 'connecting';
    const { selfId, clusterSecret, limits } = this.#ctx;
    const hello = createHelloHeader({ from: selfId, to: this.peerId, channel: 'raft', clusterSecret, nowMs: this.#ctx.nowMs(), clusterId: this.#ctx.clusterId(), incarnation: this.#ctx.incarnation });
    const ws = new WebSocket(this.#url, {
      headers: { [HELLO_HEADER]: hello },
      perMessageDeflate: false,
      handshakeTimeout: limits.connectTimeoutMs,
      maxPayload: OUTBOUND_MAX_PAYLOAD_BYTES,
      followRedirects: false,
      generateMask: zeroMask,
      ...this.#ctx.tls?.dialOptions(this.peerId),
    });
    const conn: Connection = {
      ws, socket: null, opened: false, accepted: false, unflushedBytes: 0, baselineWrittenBytes: 0,
      liveness: null, tickTimer: null, pingSentAtMs: null,
    };
    this.#conn = conn;
    ws.on('upgrade', (res: IncomingMessage) => {
      conn.socket = res.socket;
    });
    ws.on('open', () => this.#onOpen(conn));
    ws.on('pong', (payload) => this.#onPong(conn, payload));
    ws.on('message', () => this.#closeConn(conn, CloseCode.BadInput, 'an acceptor must not send data on a raft link'));
    ws.on('error', (err) => this.#onError(conn, err));
    ws.on('close', (code, reason) => this.#onClose(conn, code, reason.toString('utf8')));
  }

  #onOpen(conn: Connection): void {
    if (this.#conn !== conn) return;
    conn.opened = true;
    conn.baselineWrittenBytes = conn.socket?.bytesWritten ?? 0;
    conn.liveness = new LivenessTracker(this.#ctx.limits.pongTimeoutMs, performance.now());
    this.#tick(conn); // pings at once: the answer tells us the peer accepted the hello
    conn.tickTimer = setInterval(() => this.#tick(conn), this.#ctx.limits.pingIntervalMs).unref();
  }

  #onAccepted(conn: Connection): void {
    conn.accepted = true;
    // A pong can arrive after close(): a closed link stays closed (else it would redial as a
    // zombie next to its replacement, and the two would replace each other at the peer forever).
    if (this.#state === 'closed') return;
    this.#state = 'open';
    // The peer accepted us and answers: back-off starts over.
    this.#attempt = 0;
    this.#ctx.logger.info({ peer: this.peerId, address: this.address }, 'peer link open');
    if (this.#queue.length > 0) this.#ctx.markDirty(this);
  }

  /** Every pingIntervalMs: judge liveness from the peer's progress reports, then ping. */
  #tick(conn: Connection): void {
    if (conn.ws.readyState !== WebSocket.OPEN || conn.liveness === null) return;
    const writtenBytes = (conn.socket?.bytesWritten ?? 0) - conn.baselineWrittenBytes;
    const verdict = conn.liveness.check(performance.now(), writtenBytes);
    if (!verdict.ok) {
      this.#ctx.logger.warn(
        { peer: this.peerId, reason: verdict.reason, pongTimeoutMs: this.#ctx.limits.pongTimeoutMs },
        'peer link is not making progress; terminating it (silent partition?)',
      );
      conn.ws.terminate();
      return;
    }
    if (conn.pingSentAtMs !== null) return; // the last ping is still queued or unanswered
    conn.pingSentAtMs = performance.now();
    conn.ws.ping();
  }

  #onPong(conn: Connection, payload: Buffer): void {
    const pong = decodePong(payload);
    if (pong === null) {
      this.#closeConn(conn, CloseCode.BadInput, 'malformed pong (expected a progress report)');
      return;
    }
    const nowMs = performance.now();
    conn.liveness?.onPong(nowMs, pong.bytesRead);
    if (!conn.accepted && this.#conn === conn) this.#onAccepted(conn);
    if (pong.kind !== PongKind.Reply || conn.pingSentAtMs === null) return;
    this.#counters.rttMs = Math.round((nowMs - conn.pingSentAtMs) * 1000) / 1000;
    conn.pingSentAtMs = null;
  }

  #onError(conn: Connection, err: Error): void {
    // 'close' always follows; log here only what 'close' cannot tell (refused, timed out, reset).
    const code = (err as NodeJS.ErrnoException).code;
    const fields = { peer: this.peerId, address: this.address, err: err.message, code };
    if (conn.opened) this.#ctx.logger.warn(fields, 'peer link error');
    // Something answered that is not a quorumkv node's /raft endpoint: a configuration mistake.
    else if (err.message.startsWith('Unexpected server response')) this.#ctx.logger.warn(fields, 'peer address did not accept a /raft upgrade');
    // Refused or timed out: the peer is down or unreachable, which is routine during restarts.
    else this.#ctx.logger.debug(fields, 'peer dial failed');
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    clearConnTimers(conn);
    if (this.#conn !== conn) return;
    this.#conn = null;
    const lost = this.#queue.length;
    this.#counters.droppedDisconnected += lost;
    this.#queue = [];
    this.#queueSizes = [];
    this.#queuedBytes = 0;
    if (this.#state === 'closed') return;
    this.#state = 'backoff';
    const delayMs = backoffDelayMs(
      this.#attempt++,
      { initialMs: this.#ctx.limits.reconnectInitialMs, maxMs: this.#ctx.limits.reconnectMaxMs },
      this.#ctx.random,
    );
    const fields = { peer: this.peerId, code, reason, lostMessages: lost, retryInMs: delayMs };
    if (code >= 4000) this.#ctx.logger.warn(fields, 'peer refused or closed the link');
    else if (conn.opened) this.#ctx.logger.info(fields, 'peer link closed');
    else this.#ctx.logger.debug(fields, 'peer dial failed');
    this.#reconnectTimer = setTimeout(() => this.#dial(), delayMs).unref();
    this.#ctx.peerDown(this.peerId);
  }

  #closeConn(conn: Connection, code: number, reason: string): void {
    this.#ctx.logger.warn({ peer: this.peerId, code, reason }, 'closing peer link');
    closeWithGrace(conn.ws, code, reason, this.#ctx.limits.closeGraceMs);
  }

  /**
   * The peer just proved it is up (it connected to us): if this link is waiting out a reconnect
   * back-off, dial now and restart the back-off from its first step. Without this, a restarted
   * node stayed unreachable from its peers for up to reconnectMaxMs, and a leader failure in that
   * window needed a second election.
   */
  peerIsUp(): void {
    if (this.#state !== 'backoff' || this.#reconnectTimer === null) return;
    clearTimeout(this.#reconnectTimer);
    this.#attempt = 0;
    this.#dial();
  }

  /** Closes the link for good: drops the queue, closes the socket; resolves once it is closed. */
  close(): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    this.#state = 'closed';
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const conn = this.#conn;
    this.#closed =
      conn === null
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            conn.ws.once('close', () => resolve());
            closeWithGrace(conn.ws, CloseCode.GoingAway, 'link closed', this.#ctx.limits.closeGraceMs);
          });
    return this.#closed;
  }

  /** The outbound half of this peer's stats. */
  stats(): Omit<PeerStats, 'inboundConnected' | 'receivedMessages' | 'receivedFrames' | 'receivedBytes' | 'droppedMisaddressed'> {
    return {
      address: this.address,
      state: this.#state,
      connected: this.#state === 'open',
      queuedMessages: this.#queue.length,
      queuedBytes: this.#queuedBytes,
      unflushedBytes: this.#conn?.unflushedBytes ?? 0,
      ...this.#counters,
    };
  }
}

function clearConnTimers(conn: Connection): void {
  if (conn.tickTimer !== null) clearInterval(conn.tickTimer);
  conn.tickTimer = null;
}
