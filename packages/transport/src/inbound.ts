// The receiving half: authenticated inbound connections, one per peer (and channel). Each frame
// is decoded strictly; any violation closes that connection with a reason and nothing else.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Message } from '@quorumkv/raft';
import { CloseCode } from './close-codes.js';
import { checkMessage, decodeFrame, messageBounds, type MessageBounds } from './codec.js';
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
  /** `incarnation` is the one the connection's hello proved (the host's incarnation rule filters by it). */
  onMessage: (msg: Message, incarnation: string) => void;
  /** Counts a connection closed for a bad frame. */
  countBadFrame: () => void;
}

/** One authenticated inbound connection from `peerId`. Internal to the transport. */
export class InboundConnection {
  readonly peerId: string;
  /** The incarnation the dialler's hello carried (covered by its MAC). */
  readonly incarnation: string;
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
  readonly #bounds: MessageBounds;

  /** `ws` must come from a server with autoPong off: this connection answers pings itself. */
  constructor(ctx: InboundContext, ws: WebSocket, socket: Socket, peer: { id: string; incarnation: string }, counters: InboundCounters, onClosed: () => void) {
    this.#ctx = ctx;
    this.#ws = ws;
    this.#socket = socket;
    this.#baselineReadBytes = socket.bytesRead;
    this.peerId = peer.id;
    this.incarnation = peer.incarnation;
    this.#counters = counters;
    this.#bounds = messageBounds(ctx.limits.maxFrameBytes);
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
      this.#check(messages);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err; // decodeFrame and #check raise nothing else: a bug
      this.#reject(err.message);
      return;
    }
    const c = this.#counters;
    c.receivedFrames++;
    c.receivedBytes += data.byteLength;
    this.#deliver(messages);
  }

  /**
   * Validates a whole frame before any of its messages is delivered: at most maxQueuedMessages
   * messages, each from the authenticated peer, addressed to this node, and passing `checkMessage`.
   * @throws FrameError for the first message that does not.
   */
  #check(messages: Message[]): void {
    const { selfId, limits } = this.#ctx;
    // A sender's frame never holds more than its queue (every node uses the same limits).
    if (messages.length > limits.maxQueuedMessages) throw new FrameError(`${messages.length} messages in one frame (at most ${limits.maxQueuedMessages})`);
    for (let i = 0; i < messages.length; i++) {
      const msg = messages[i] as Message;
      if (msg.from !== this.peerId || msg.to !== selfId) {
        this.#counters.droppedMisaddressed += messages.length;
        throw new FrameError(`message ${i} is addressed ${msg.from}->${msg.to} on the connection ${this.peerId}->${selfId}`);
      }
      checkMessage(msg, i, this.#bounds);
    }
  }

  /**
   * Hands each message to the host. An exception from the handler (the core's BadMessageError
   * for a message no correct peer sends, or a host bug) closes this connection with the error's
   * message as the reason and is logged; it never propagates into the socket's event handler,
   * where it would end the process.
   */
  #deliver(messages: Message[]): void {
    const { onMessage } = this.#ctx;
    for (const msg of messages) {
      if (this.#closing) return;
      this.#counters.receivedMessages++;
      try {
        onMessage(msg, this.incarnation);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        const code = (err as { code?: unknown }).code;
        this.#ctx.countBadFrame();
        this.#ctx.logger.warn(
          { peer: this.peerId, type: msg.type, term: msg.term, code: typeof code === 'string' ? code : undefined, reason },
          'the host refused a message from this peer; closing the connection',
        );
        this.close(CloseCode.BadInput, reason);
        return;
      }
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
