// The receiving half: authenticated inbound connections, one per peer (and channel). Each frame
// is decoded strictly; any violation closes that connection with a reason and nothing else.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Message } from '@quorumkv/raft';
import { CloseCode } from './close-codes.js';
import { decodeFrame } from './codec.js';
import { FrameError } from './errors.js';
import type { TransportLimits } from './limits.js';
import { closeWithGrace } from './close.js';
import { encodePong, PongKind } from './progress.js';
import type { PeerStats, TransportLogger } from './types.js';

/** Per-peer receive counters; they outlive single connections. */
export type InboundCounters = Pick<PeerStats, 'receivedMessages' | 'receivedFrames' | 'receivedBytes' | 'droppedMisaddressed'>;

/** What an inbound connection needs from its transport. */
export interface InboundContext {
  selfId: string;
  limits: TransportLimits;
  logger: TransportLogger;
  onMessage: (msg: Message) => void;
  /** Counts a connection closed for a bad frame. */
  countBadFrame: () => void;
}

/** One authenticated inbound connection from `peerId`. Internal to the transport. */
export class InboundConnection {
  readonly peerId: string;
  readonly #ws: WebSocket;
  readonly #ctx: InboundContext;
  readonly #counters: InboundCounters;
  readonly #socket: Socket;
  /** socket.bytesRead when the upgrade completed (the upgrade request is not frame bytes). */
  readonly #baselineReadBytes: number;
  #lastReadBytes = 0;
  #lastActivityMs = performance.now();
  #tickTimer: NodeJS.Timeout | null;
  /** Set once this side decided to close: frames still buffered behind the decision are ignored. */
  #closing = false;

  /** `ws` must come from a server with autoPong off: this connection answers pings itself. */
  constructor(ctx: InboundContext, ws: WebSocket, socket: Socket, peerId: string, counters: InboundCounters, onClosed: () => void) {
    this.#ctx = ctx;
    this.#ws = ws;
    this.#socket = socket;
    this.#baselineReadBytes = socket.bytesRead;
    this.peerId = peerId;
    this.#counters = counters;
    ws.on('message', (data, isBinary) => this.#onFrame(data, isBinary));
    ws.on('ping', () => this.#pong(PongKind.Reply));
    ws.on('close', () => {
      this.#stopTimer();
      onClosed();
    });
    this.#tickTimer = setInterval(() => this.#tick(), ctx.limits.pingIntervalMs).unref();
  }

  #readBytes(): number {
    return this.#socket.bytesRead - this.#baselineReadBytes;
  }

  /** Answers a ping, or reports unprompted: either way the dialler learns how much we have read. */
  #pong(kind: PongKind): void {
    if (this.#closing || this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.pong(encodePong(kind, this.#readBytes()));
  }

  /**
   * Every pingIntervalMs: report progress, and close the connection if no byte has arrived for
   * inboundIdleTimeoutMs (bytes, not whole frames: a large frame on a slow link is activity).
   */
  #tick(): void {
    const nowMs = performance.now();
    const readBytes = this.#readBytes();
    if (readBytes !== this.#lastReadBytes) {
      this.#lastReadBytes = readBytes;
      this.#lastActivityMs = nowMs;
    }
    const idleMs = this.#ctx.limits.inboundIdleTimeoutMs;
    if (nowMs - this.#lastActivityMs >= idleMs) {
      this.close(CloseCode.IdleTimeout, `no frame or ping for ${idleMs} ms`);
      return;
    }
    this.#pong(PongKind.Report);
  }

  #stopTimer(): void {
    if (this.#tickTimer !== null) clearInterval(this.#tickTimer);
    this.#tickTimer = null;
  }

  #onFrame(data: unknown, isBinary: boolean): void {
    if (this.#closing) return;
    if (!isBinary || !(data instanceof Uint8Array)) {
      this.#reject('text frames are not accepted');
      return;
    }
    let messages: Message[];
    try {
      messages = decodeFrame(data);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err; // decodeFrame raises nothing else: a bug
      this.#reject(err.message);
      return;
    }
    const c = this.#counters;
    c.receivedFrames++;
    c.receivedBytes += data.byteLength;
    this.#deliver(messages);
  }

  #deliver(messages: Message[]): void {
    const { selfId, onMessage } = this.#ctx;
    let misaddressed = 0;
    let example: Message | undefined;
    for (const msg of messages) {
      if (msg.from !== this.peerId || msg.to !== selfId) {
        misaddressed++;
        example ??= msg;
        continue;
      }
      this.#counters.receivedMessages++;
      // Exceptions from onMessage are the host's bugs; they are not swallowed here.
      onMessage(msg);
    }
    if (example !== undefined) {
      this.#counters.droppedMisaddressed += misaddressed;
      this.#ctx.logger.warn(
        { peer: this.peerId, dropped: misaddressed, from: example.from, to: example.to, type: example.type },
        'dropped messages whose from/to do not match the authenticated connection',
      );
    }
  }

  #reject(reason: string): void {
    this.#ctx.countBadFrame();
    this.#ctx.logger.warn({ peer: this.peerId, reason }, 'bad frame from peer; closing the connection');
    this.close(CloseCode.BadInput, reason);
  }

  /** Closes this connection with a code and reason (idempotent). */
  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#stopTimer();
    if (code === CloseCode.IdleTimeout) this.#ctx.logger.info({ peer: this.peerId, reason }, 'closing idle inbound connection');
    closeWithGrace(this.#ws, code, reason, this.#ctx.limits.closeGraceMs);
  }

  /** Resolves once the socket is closed. */
  closed(): Promise<void> {
    if (this.#ws.readyState === this.#ws.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.#ws.once('close', () => resolve()));
  }
}
