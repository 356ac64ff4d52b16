// One node as the client sees it: its address, its WebSocket (opened lazily, with a hello), the
// requests in flight on it, and its reconnect back-off. Routing and retries live in client.ts;
// this file only turns "send this request to this node" into a promise.

import {
  AbortedError,
  CLIENT_PATH,
  DEFAULT_LIMITS,
  DeadlineSweep,
  ErrorCode,
  IndeterminateError,
  PROTOCOL_VERSION,
  ProtocolError,
  QuorumKvError,
  REQUEST_TIMEOUT_MS_MAX,
  TimeoutError,
  WATCH_ACKS_MAX,
  UnavailableError,
  decodeResponseFrame,
  encodeFrame,
  errorFromWire,
  validateResult,
  type ClientRequest,
  type HelloResult,
  type Limits,
  type Op,
  type ResultByOp,
  type WatchRequest,
  type WatchResult,
} from '@quorumkv/protocol';
import { backoffDelayMs, type BackoffPolicy } from './backoff.js';
import { CallSignal, type AbortListener } from './call-signal.js';
import { encodePutFrame } from './put-frame.js';
import { WS_OPEN, type WebSocketFactory, type WebSocketLike } from './websocket.js';

/** A request without its id (the connection numbers them). */
export type RequestBody = ClientRequest extends infer R ? (R extends ClientRequest ? Omit<R, 'id'> : never) : never;

/** What a node connection needs from its client. */
export interface NodeConnectionSettings {
  webSocketFactory: WebSocketFactory;
  /** Largest frame accepted from a node before its hello announces its own limit, in bytes. */
  maxFrameBytes: number;
  connectTimeoutMs: number;
  reconnectBackoff: BackoffPolicy;
  random: () => number;
  now: () => number;
  /** Called after every successful hello (the client learns leader hints and limits from it). */
  onHello: (node: NodeConnection, hello: HelloResult) => void;
}

/**
 * One request in flight: the connection's record of it and its abort listener in one object
 * (instead of a record plus four closures per request).
 */
class PendingRequest implements AbortListener {
  resolveFn: (result: unknown) => void = noop;
  rejectFn: (err: QuorumKvError) => void = noop;

  constructor(
    private readonly conn: NodeConnection,
    readonly id: number,
    readonly op: Op,
    readonly signal: CallSignal,
    /** When the request times out, in ms on the `now()` clock. */
    readonly expiresMs: number,
  ) {}

  resolve(result: unknown): void {
    this.conn.forget(this);
    this.resolveFn(result);
  }

  reject(err: QuorumKvError): void {
    this.conn.forget(this);
    this.rejectFn(err);
  }

  /**
   * The request was sent and its answer will never come (connection lost, deadline, abort). For
   * a write that is no "failure": the node may have proposed it, so it rejects with
   * {@link IndeterminateError} (cause: what cut it off). Other requests reject with `err`.
   */
  lost(err: QuorumKvError): void {
    this.reject(isWriteOp(this.op) ? new IndeterminateError(`${err.message}; the write had been sent, it may have been applied`, { cause: err }) : err);
  }

  onCallAbort(): void {
    this.lost(abortReason(this.signal));
  }
}

/** Put, delete, cas and txn: the requests that change state (and carry a session). */
export function isWriteOp(op: Op): boolean {
  return op === 'put' || op === 'delete' || op === 'cas' || op === 'txn';
}

/**
 * The error a node answered, as this client must read it. A node before QKV_INDETERMINATE
 * existed answered a write proposed but unfinished at its deadline with QKV_TIMEOUT: for a write,
 * that is read as indeterminate.
 */
function answeredError(op: Op, err: QuorumKvError): QuorumKvError {
  if (err.code === ErrorCode.Timeout && isWriteOp(op)) return new IndeterminateError(err.message, { cause: err });
  return err;
}

function noop(): void {}

/**
 * Encodes a request: the body's fields, then `id` and `timeoutMs`. The bytes are the same as
 * encoding `{ ...body, id, timeoutMs }`, without copying the body: a usual put is written
 * directly (put-frame.ts; its body has exactly the fields op, key, value, session, in this order),
 * and for any other request the two fields are set on the body itself (added at its end, or
 * overwritten in place when a retry sends the same body again).
 * Throws TooLargeError when the frame would exceed `maxFrameBytes`.
 */
export function encodeRequest(body: RequestBody, id: number, timeoutMs: number, maxFrameBytes: number): Uint8Array {
  if (body.op === 'put') {
    // The usual put, written directly (same bytes); anything it does not cover goes on below.
    const frame = encodePutFrame(body.key, body.value, body.session, id, timeoutMs);
    if (frame !== undefined && frame.length <= maxFrameBytes) return frame;
  }
  const request = body as RequestBody & { id: number; timeoutMs: number };
  request.id = id;
  request.timeoutMs = timeoutMs;
  return encodeFrame(request as ClientRequest, maxFrameBytes);
}

/** Where a watch stream's frames go: batches and progress, then at most one error that ends it. */
export interface WatchStreamSink {
  frame(result: WatchResult): void;
  /** The stream ended: the node's error, or the connection was lost (UnavailableError). */
  error(err: QuorumKvError): void;
}

/** A watch stream open on a node connection. */
export interface WatchStreamHandle {
  /** Tells the node `batches` more frames were taken (it may send as many more). */
  ack(batches: number): void;
  /** Cancels the stream at the node; its sink is told nothing more. */
  cancel(): void;
}

/** Per-attempt wait limits: absolute deadline (ms since epoch, `now()` clock) and an abort signal. */
export interface AttemptLimits {
  deadlineMs: number;
  signal: CallSignal;
}

/** Turns a URL-ish endpoint ("host:port", "ws://host:port", "wss://host:port/") into parts. */
export function parseEndpoint(endpoint: string, defaultScheme: 'ws' | 'wss' = 'ws'): { address: string; url: string } {
  const m = /^(?:(wss?):\/\/)?([^/?#\s]+)(?:\/client)?\/?$/.exec(endpoint.trim());
  if (!m || !m[2]) throw new TypeError(`bad endpoint "${endpoint}"; expected host:port or ws://host:port`);
  const scheme = m[1] ?? defaultScheme;
  return { address: m[2], url: `${scheme}://${m[2]}${CLIENT_PATH}` };
}

/** One node: lazily opened WebSocket + hello, pipelined requests, reconnect back-off. */
export class NodeConnection {
  /** Node id learnt from the hello; undefined until the first one. */
  serverId: string | undefined;
  /** Limits the node announced (defaults until the first hello). */
  limits: Limits = DEFAULT_LIMITS;
  private ws: WebSocketLike | undefined;
  private opening: Promise<void> | undefined;
  private readonly pending = new Map<number, PendingRequest>();
  /** Watch streams open on this socket, by id (their frames are answers carrying that id). */
  private readonly streams = new Map<number, WatchStreamSink>();
  /** Watch acks not yet sent (one id per frame taken), sent together: see flushAcks. */
  private acks: number[] = [];
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Times out the requests in flight: one timer per connection, not one per request. */
  private readonly deadlines = new DeadlineSweep<PendingRequest>({
    live: () => this.pending.values(),
    expire: (p) => p.lost(new TimeoutError(`no answer from ${this.address} before the deadline`)),
    now: () => this.s.now(),
  });
  private nextRequestId = 1;
  private failures = 0;
  private retryAtMs = 0;
  private closed = false;

  constructor(
    readonly address: string,
    readonly url: string,
    private readonly s: NodeConnectionSettings,
  ) {}

  /** True while the first connection attempt (and its hello) is still under way. */
  get firstHelloPending(): boolean {
    return this.serverId === undefined && this.opening !== undefined && this.failures === 0;
  }

  /** True when a hello-completed socket is open. */
  get isOpen(): boolean {
    return this.ws !== undefined && this.opening === undefined && this.ws.readyState === WS_OPEN;
  }

  /** When the next connection attempt is allowed (0 = now). */
  get retryAt(): number {
    return this.isOpen ? 0 : this.retryAtMs;
  }

  /**
   * Another node vouched for this one (named it leader): wait at most `maxWaitMs` more before
   * the next connection attempt, whatever the back-off said. Not a full reset: hints can be stale
   * (followers name a dead leader until their election timeout), and a full reset let every
   * caller reconnect to the dead node at once (measured: ~150 refused connects in 250 ms).
   */
  shortenBackoff(maxWaitMs: number): void {
    this.retryAtMs = Math.min(this.retryAtMs, this.s.now() + maxWaitMs);
  }

  /** Requests waiting for an answer on this node. */
  get inflight(): number {
    return this.pending.size;
  }

  /**
   * Sends a request and resolves with its validated result. Opens the connection first if needed.
   * Rejects with the node's typed error, UnavailableError (connection failed or lost),
   * TimeoutError (deadline), or the signal's reason.
   */
  request<K extends Op>(op: K, body: RequestBody, deadlineMs: number, signal: CallSignal): Promise<ResultByOp[K]> {
    if (this.isOpen) return this.send(op, body, deadlineMs, signal) as Promise<ResultByOp[K]>;
    return this.open({ deadlineMs, signal }).then(() => this.send(op, body, deadlineMs, signal) as Promise<ResultByOp[K]>);
  }

  /** Opens (or joins the opening of) the connection, bounded by the caller's limits. */
  open(limits: AttemptLimits): Promise<void> {
    if (this.closed) return Promise.reject(new UnavailableError(`connection to ${this.address} is closed`));
    if (this.isOpen) return Promise.resolve();
    this.opening ??= this.connect().finally(() => {
      this.opening = undefined;
    });
    return waitBounded(this.opening, limits, this.s.now);
  }

  private async connect(): Promise<void> {
    const waitMs = this.retryAtMs - this.s.now();
    if (waitMs > 0) throw new UnavailableError(`${this.address} is in reconnect back-off for ${waitMs} ms`);
    try {
      await this.openSocket();
      const hello = (await this.send(
        'hello',
        { op: 'hello', version: PROTOCOL_VERSION },
        this.s.now() + this.s.connectTimeoutMs,
        new CallSignal(),
      )) as HelloResult;
      this.serverId = hello.serverId;
      this.limits = hello.limits;
      this.failures = 0;
      this.retryAtMs = 0;
      this.s.onHello(this, hello);
    } catch (e) {
      this.failures++;
      this.retryAtMs = this.s.now() + backoffDelayMs(this.failures, this.s.reconnectBackoff, this.s.random);
      this.drop(new UnavailableError(`could not open ${this.url}`, { cause: e }));
      throw e instanceof QuorumKvError ? e : new UnavailableError(`could not connect to ${this.address}`, { cause: e });
    }
  }

  private openSocket(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = this.s.webSocketFactory(this.url, this.s.maxFrameBytes);
      } catch (e) {
        return reject(new UnavailableError(`could not create a WebSocket to ${this.url}`, { cause: e }));
      }
      this.ws = ws;
      const timer = setTimeout(() => {
        reject(new UnavailableError(`connecting to ${this.address} took over ${this.s.connectTimeoutMs} ms`));
        this.drop(new UnavailableError('connect timeout'));
      }, this.s.connectTimeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      let detail = '';
      ws.onerror = (ev) => {
        // `onclose` follows; keep what the error says (e.g. ECONNREFUSED under Node) for its message.
        const m = (ev as { message?: unknown }).message;
        if (typeof m === 'string' && m) detail = `: ${m}`;
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        const why = ev.reason ? `: ${ev.reason}` : detail;
        const err = new UnavailableError(`connection to ${this.address} closed (${ev.code}${why})`);
        if (this.ws === ws) this.drop(err);
        reject(err);
      };
      ws.onmessage = (ev) => this.onFrame(ev.data);
    });
  }

  private send(op: Op, body: RequestBody, deadlineMs: number, signal: CallSignal): Promise<unknown> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN) return Promise.reject(new UnavailableError(`not connected to ${this.address}`));
    const id = this.nextRequestId++;
    const nowMs = this.s.now();
    const remainingMs = Math.ceil(deadlineMs - nowMs);
    if (remainingMs <= 0) return Promise.reject(new TimeoutError());
    let frame: Uint8Array;
    try {
      // Throws TooLargeError before anything is sent; the caller does not retry that.
      frame = encodeRequest(body, id, Math.min(remainingMs, REQUEST_TIMEOUT_MS_MAX), this.limits.maxFrameBytes);
    } catch (e) {
      return Promise.reject(e);
    }
    if (signal.aborted) return Promise.reject(abortReason(signal));
    const p = new PendingRequest(this, id, op, signal, nowMs + remainingMs);
    const promise = new Promise<unknown>((resolve, reject) => {
      p.resolveFn = resolve;
      p.rejectFn = reject;
    });
    signal.subscribe(p);
    this.pending.set(id, p);
    this.deadlines.arm(p.expiresMs);
    try {
      ws.send(frame);
    } catch (e) {
      // The promise rejects with what the socket threw, as it did when sent inside its executor.
      this.forget(p);
      p.rejectFn(e as QuorumKvError);
    }
    return promise;
  }

  /**
   * Opens a watch stream on the open connection (throws UnavailableError when it is not open,
   * TooLargeError for a frame over the limit). Frames go to `sink` until it errs or is cancelled.
   */
  openWatch(body: Omit<WatchRequest, 'id'>, sink: WatchStreamSink): WatchStreamHandle {
    const ws = this.ws;
    if (!ws || !this.isOpen) throw new UnavailableError(`not connected to ${this.address}`);
    const id = this.nextRequestId++;
    const frame = encodeFrame({ ...body, id } as ClientRequest, this.limits.maxFrameBytes);
    this.streams.set(id, sink);
    ws.send(frame);
    // Only on the socket the stream lives on, while it lives: after a reconnect the id means nothing.
    const live = (): boolean => this.ws === ws && this.streams.has(id) && ws.readyState === WS_OPEN;
    return {
      ack: (batches) => {
        if (!live()) return;
        for (let i = 0; i < batches; i++) this.acks.push(id);
        this.ackTimer ??= setTimeout(() => this.flushAcks(), 0);
      },
      cancel: () => {
        if (live()) ws.send(encodeFrame({ id, op: 'watchCancel' }, this.limits.maxFrameBytes));
        this.streams.delete(id);
      },
    };
  }

  /**
   * Sends the acks gathered since the last flush, WATCH_ACKS_MAX a frame: with many watches on a
   * connection, one ack frame per turn rather than one per batch (half the frames otherwise).
   */
  private flushAcks(): void {
    this.ackTimer = undefined;
    const acks = this.acks;
    this.acks = [];
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN) return;
    for (let i = 0; i < acks.length; i += WATCH_ACKS_MAX) {
      ws.send(encodeFrame({ id: this.nextRequestId++, op: 'watchAck', watches: acks.slice(i, i + WATCH_ACKS_MAX) }, this.limits.maxFrameBytes));
    }
  }

  /**
   * Forgets a request that got its answer, timed out or was aborted (called by its record).
   * @internal
   */
  forget(p: PendingRequest): void {
    p.signal.unsubscribe(p);
    this.pending.delete(p.id);
    if (this.pending.size === 0) this.deadlines.stop();
  }

  private onFrame(data: unknown): void {
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : undefined;
    try {
      if (!bytes) throw new ProtocolError('the node sent a text frame');
      const res = decodeResponseFrame(bytes, this.limits.maxFrameBytes);
      const stream = this.streams.get(res.id);
      if (stream) return this.onStreamFrame(res.id, stream, res);
      const p = this.pending.get(res.id);
      if (!p) return; // answer to a request the caller already gave up on
      if (res.ok) p.resolve(validateResult(p.op, res.result, this.limits));
      else p.reject(answeredError(p.op, errorFromWire(res.error)));
    } catch (e) {
      // A node that breaks the protocol loses this connection; callers retry elsewhere.
      const err = e instanceof QuorumKvError ? e : new ProtocolError('bad frame from the node', { cause: e });
      this.drop(new UnavailableError(`${this.address} sent a bad frame: ${err.message}`, { cause: err }));
    }
  }

  /** A frame of a watch stream: a batch (validated; a bad one throws) or the error that ends it. */
  private onStreamFrame(id: number, sink: WatchStreamSink, res: ReturnType<typeof decodeResponseFrame>): void {
    if (res.ok) return sink.frame(validateResult('watch', res.result, this.limits));
    this.streams.delete(id);
    sink.error(errorFromWire(res.error));
  }

  /** Closes the socket (if any) and fails every request in flight on it with `err`. */
  private drop(err: QuorumKvError): void {
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = null;
      ws.onerror = () => {};
      try {
        ws.close(1000, 'client dropped the connection');
      } catch {
        // Closing a socket that never opened can throw in some implementations; it is gone anyway.
      }
    }
    // Each reject also forgets its request (and the deadline timer stops with the last one).
    // Every request in `pending` was sent (it is added right before ws.send and removed if that throws).
    const waiting = [...this.pending.values()];
    for (const p of waiting) p.lost(err);
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.acks = []; // they were for this socket's watches
    for (const sink of streams) sink.error(err);
  }

  /** Closes for good: in-flight requests fail with `err`, and no reconnects follow. */
  close(err: QuorumKvError): void {
    this.closed = true;
    this.drop(err);
  }
}

/** The abort reason as a typed error. */
export function abortReason(signal: CallSignal): QuorumKvError {
  return signal.reason ?? new AbortedError('the operation was aborted');
}

/** Waits for `p`, but no longer than the deadline and not past an abort. */
export function waitBounded<T>(p: Promise<T>, limits: AttemptLimits, now: () => number): Promise<T> {
  if (limits.signal.aborted) return Promise.reject(abortReason(limits.signal));
  return new Promise<T>((resolve, reject) => {
    const listener: AbortListener = {
      onCallAbort: () => {
        clearTimeout(timer);
        reject(abortReason(limits.signal));
      },
    };
    const done = (): void => {
      clearTimeout(timer);
      limits.signal.unsubscribe(listener);
    };
    limits.signal.subscribe(listener);
    const timer = setTimeout(() => {
      limits.signal.unsubscribe(listener);
      reject(new TimeoutError('deadline exceeded while connecting'));
    }, Math.max(0, limits.deadlineMs - now()));
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
  });
}
