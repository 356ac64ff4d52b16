// The client endpoint: WebSocket `/client`, msgpack frames, pipelined requests.
//
// Each connection starts with a `hello` (version check, node identity, limits). After it, every
// request runs concurrently and is answered when it completes, in any order. Limits:
//  - a frame larger than maxFrameBytes is refused by `ws` (close 1009) before it is buffered;
//  - a frame that cannot be decoded or has no usable id closes the connection with a reason;
//  - a well-framed request with bad arguments gets an error answer; the connection stays;
//  - more than maxInflightPerConnection requests in flight: the extra ones get QKV_BUSY at once;
//  - a `watch` opens a stream (watch-connection.ts) that lives outside the in-flight requests and
//    their deadlines, bounded by the watch limits (QKV_BUSY) and by its window of unacknowledged
//    batches; `watchAck` and `watchCancel` are never answered;
//  - a client that answers no ping within pingIntervalMs is terminated;
//  - a client that does not read its answers (bufferedAmount > maxBufferedBytes) is terminated;
//  - bytes are charged to the node's request budget as they arrive, and a request's frame stays
//    charged until it is answered; past the budget the socket is paused (and closed with 1013 if
//    it stays paused for STALLED_MS), and a frame completed over it gets QKV_BUSY;
//  - a write that would create a client session past the per-connection or per-address session
//    quota gets QKV_QUOTA_EXCEEDED before anything is proposed.
// Nothing a client sends can throw out of this file.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { fitCloseReason } from '@quorumkv/transport';
import { ArrivalMeter, type ByteBudget, type SessionQuota } from './admission.js';
import {
  BusyError,
  CLIENT_PATH,
  ClosedError,
  DEFAULT_LIMITS,
  DeadlineSweep,
  FRAME_OVERHEAD_BYTES_MAX,
  IndeterminateError,
  InvalidArgumentError,
  InternalError,
  PROTOCOL_VERSION,
  ProtocolError,
  QuorumKvError,
  TimeoutError,
  TooLargeError,
  decodeRequestFrame,
  encodeFrame,
  encodeWatchFrame,
  errorToWire,
  validateLimits,
  type CallContext,
  type ClientRequest,
  type ClientResponse,
  type HelloResult,
  type KvService,
  type WatchService,
  type WatchResult,
  type Limits,
} from '@quorumkv/protocol';
import { ConnectionWatches } from './watch-connection.js';

/** A structured logger (pino-compatible subset). */
export interface EndpointLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

/** Options of {@link attachClientEndpoint}. Everything but `service` has a default. */
export interface ClientEndpointOptions {
  /** The key-value operations to serve. */
  service: KvService;
  /** Serves `watch` streams (the node's WatchStreams). Default: none; `watch` is then QKV_INVALID_ARGUMENT. */
  watch?: WatchService;
  /** Largest frame in either direction, in bytes. Default 2 MiB. */
  maxFrameBytes?: number;
  /** Largest key, in bytes. Default 4 KiB. */
  maxKeyBytes?: number;
  /** Largest value, in bytes. Default 1 MiB. */
  maxValueBytes?: number;
  /** Requests in flight per connection before extra ones are answered QKV_BUSY. Default 1024. */
  maxInflightPerConnection?: number;
  /** Open connections before new upgrades are refused with 503. Default 10 000. */
  maxConnections?: number;
  /** Deadline of a request that names none, in ms. Default 10 000. */
  defaultTimeoutMs?: number;
  /** Ping period; a connection silent for two periods is terminated. Default 10 000 ms. */
  pingIntervalMs?: number;
  /** A connection must say `hello` within this, in ms. Default 10 000. */
  helloTimeoutMs?: number;
  /** `retryAfterMs` in QKV_BUSY answers caused by the in-flight limit. Default 5. */
  busyRetryAfterMs?: number;
  /** Unsent answer bytes per connection before the client is dropped as too slow. Default 16 MiB. */
  maxBufferedBytes?: number;
  /** Where to log; default: nowhere. */
  logger?: EndpointLogger;
  /**
   * The node's budget of buffered request bytes (shared with the HTTP API): incoming bytes are
   * charged to it as they arrive and a request's frame until the request is answered (see
   * ArrivalMeter). Default: none (no node-wide limit).
   */
  requestBudget?: ByteBudget;
  /**
   * Session quotas: `known(id)` is true when a write in session `id` cannot create a session here
   * (the node's session table holds it, or the node is not the one that proposes), and `quota`
   * limits how many new ones a connection and a remote address may create. Default: none.
   */
  sessions?: { known: (id: string) => boolean; quota: SessionQuota };
  /** Called for each refusal by the admission limits (for metrics). Default: nothing. */
  onRefused?: (kind: 'request-budget' | 'session-quota' | 'stalled') => void;
  /** Called with the code of every error answered (for `qkv_request_errors_total`). */
  onError?: (code: string) => void;
}

/** The endpoint, attached to a node's HTTP server by routing `/client` upgrades to it. */
export interface ClientEndpoint {
  /**
   * Takes over an HTTP upgrade request. Paths other than `/client` are answered 404; the server
   * routes by path and calls this for `/client` (it checks again so a misroute cannot slip through).
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open client connections. */
  readonly connectionCount: number;
  /**
   * Stops accepting, aborts in-flight requests (their clients get QKV_CLOSED or a closed
   * connection), closes every connection (1001) and resolves once all are gone.
   */
  close(): Promise<void>;
}

/** Bytes each range item may add to a frame besides its key and value (field names, numbers). */
const RANGE_ITEM_OVERHEAD_BYTES = 64;
/** `retryAfterMs` of a request refused because the node's request budget is full. */
const REQUEST_BUDGET_RETRY_AFTER_MS = 50;
/** A connection paused this long for lack of request budget is closed (1013): see ArrivalMeter. */
const STALLED_MS = 1000;
/** How long a stalled connection's close frame has to leave before the socket is cut. */
const STALLED_CLOSE_GRACE_MS = 100;
/** How long close() waits for clients to finish the close handshake before cutting them off. */
const CLOSE_GRACE_MS = 1000;

const noopLogger: EndpointLogger = { debug() {}, info() {}, warn() {}, error() {} };

interface Settings {
  service: KvService;
  watch: WatchService | undefined;
  limits: Limits;
  maxInflightPerConnection: number;
  maxConnections: number;
  defaultTimeoutMs: number;
  pingIntervalMs: number;
  helloTimeoutMs: number;
  busyRetryAfterMs: number;
  maxBufferedBytes: number;
  logger: EndpointLogger;
  requestBudget: ByteBudget | undefined;
  sessions: { known: (id: string) => boolean; quota: SessionQuota } | undefined;
  onRefused: (kind: 'request-budget' | 'session-quota' | 'stalled') => void;
  onError: (code: string) => void;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`client endpoint: ${name} must be a positive integer, got ${v}`);
  return v;
}

function settingsOf(o: ClientEndpointOptions): Settings {
  const limits = validateLimits({
    maxKeyBytes: o.maxKeyBytes ?? DEFAULT_LIMITS.maxKeyBytes,
    maxValueBytes: o.maxValueBytes ?? DEFAULT_LIMITS.maxValueBytes,
    maxFrameBytes: o.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes,
  });
  return {
    service: o.service,
    watch: o.watch,
    limits,
    maxInflightPerConnection: positiveInt('maxInflightPerConnection', o.maxInflightPerConnection ?? 1024),
    maxConnections: positiveInt('maxConnections', o.maxConnections ?? 10_000),
    defaultTimeoutMs: positiveInt('defaultTimeoutMs', o.defaultTimeoutMs ?? 10_000),
    pingIntervalMs: positiveInt('pingIntervalMs', o.pingIntervalMs ?? 10_000),
    helloTimeoutMs: positiveInt('helloTimeoutMs', o.helloTimeoutMs ?? 10_000),
    busyRetryAfterMs: positiveInt('busyRetryAfterMs', o.busyRetryAfterMs ?? 5),
    maxBufferedBytes: positiveInt('maxBufferedBytes', o.maxBufferedBytes ?? 16 * 1024 * 1024),
    logger: o.logger ?? noopLogger,
    requestBudget: o.requestBudget,
    sessions: o.sessions,
    onRefused: o.onRefused ?? (() => undefined),
    onError: o.onError ?? (() => undefined),
  };
}

function rawToBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

/**
 * The CallContext of one request. Its AbortSignal is created only if something reads `signal`:
 * the node's waiters check `aborted` in their deadline sweep instead, and an AbortController per
 * request was the largest single allocation of a busy leader.
 */
export class RequestContext implements CallContext {
  private controller: AbortController | undefined;
  private reason: Error | undefined;
  constructor(readonly deadlineMs: number) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  abort(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/** One request being served. */
interface Inflight {
  id: number;
  ctx: RequestContext;
  /** The request's deadline (ms since epoch); Infinity once answered, so the sweep skips it. */
  expiresMs: number;
  /** Set once an answer (result, error or timeout) went out; later outcomes are dropped. */
  answered: boolean;
  /** A put, delete, cas or txn: its timeout answer is QKV_INDETERMINATE (it was handed to the node). */
  write: boolean;
  /** Bytes of the request's frame charged to the node's request budget until it settles. */
  bytes: number;
}

/** One client connection: hello state, in-flight requests, liveness. */
class Connection {
  private helloDone = false;
  private closing = false;
  private corked = false;
  alive = true;
  private readonly inflight = new Map<number, Inflight>();
  /** Answers QKV_TIMEOUT for requests past their deadline: one timer per connection. */
  private readonly deadlines = new DeadlineSweep<Inflight>({
    live: () => this.inflight.values(),
    expire: (entry) => this.onTimeout(entry),
    now: Date.now,
  });
  private readonly helloTimer: ReturnType<typeof setTimeout>;
  /** Sessions this connection created (counted against the per-connection session quota). */
  private readonly createdSessions = new Set<string>();
  /** The watch streams open on this connection. */
  private readonly watches: ConnectionWatches;

  constructor(
    private readonly ws: WebSocket,
    private readonly s: Settings,
    readonly remote: string,
    /** The peer's IP address (what the per-address quotas count by). */
    private readonly remoteAddress: string | undefined,
    /** Charges this connection's incoming bytes to the request budget (when there is one). */
    private readonly meter: ArrivalMeter | undefined,
  ) {
    this.watches = new ConnectionWatches(s.watch, this, {
      send: (response) => this.send(response),
      push: (id, result) => this.pushWatch(id, result),
      fail: (reason) => this.fail(1002, reason),
      inUse: (id) => this.inflight.has(id),
    });
    this.helloTimer = setTimeout(() => this.fail(1008, 'no hello in time'), s.helloTimeoutMs);
    this.helloTimer.unref();
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('error', (err) => s.logger.debug({ remote, err: err.message }, 'client socket error'));
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true;
    const bytes = rawToBytes(data);
    const held = this.meter?.claim(bytes.length) ?? 0;
    if (!this.onFrame(bytes, isBinary, held) && held > 0) this.s.requestBudget?.give(held);
  }

  /** Handles one frame; true when a request being served now holds the frame's `held` bytes. */
  private onFrame(bytes: Uint8Array, isBinary: boolean, held: number): boolean {
    if (this.closing) return false;
    if (!isBinary) {
      this.fail(1003, 'text frames are not accepted; send msgpack binary frames');
      return false;
    }
    let decoded;
    try {
      decoded = decodeRequestFrame(bytes, this.s.limits);
    } catch (e) {
      const tooBig = e instanceof TooLargeError;
      this.fail(tooBig ? 1009 : 1002, e instanceof QuorumKvError ? e.message : 'undecodable frame');
      return false;
    }
    if (!decoded.ok) {
      this.answerError(decoded.id, decoded.error);
      return false;
    }
    return this.onRequest(decoded.request, held);
  }

  /** Admits and serves one request; true when it is being served (and holds `held` bytes). */
  private onRequest(req: ClientRequest, held: number): boolean {
    if (req.op === 'hello') {
      this.onHello(req.id, req.version);
      return false;
    }
    if (!this.helloDone) {
      this.fail(1002, 'the first request must be hello');
      return false;
    }
    if (req.op === 'watch' || req.op === 'watchAck' || req.op === 'watchCancel') {
      this.watches.onRequest(req);
      return false;
    }
    if (this.inflight.has(req.id) || this.watches.has(req.id)) {
      this.fail(1002, `request id ${req.id} is already in flight`);
      return false;
    }
    if (this.inflight.size >= this.s.maxInflightPerConnection) {
      this.answerError(req.id, new BusyError(this.s.busyRetryAfterMs, 'too many requests in flight on this connection'));
      return false;
    }
    const refusal = this.admitSession(req);
    if (refusal) {
      this.s.onRefused('session-quota');
      this.answerError(req.id, refusal);
      return false;
    }
    const budget = this.s.requestBudget;
    if (budget && budget.usedBytes > budget.maxBytes) {
      this.s.onRefused('request-budget');
      this.answerError(req.id, new BusyError(REQUEST_BUDGET_RETRY_AFTER_MS, `the node is buffering ${budget.usedBytes} bytes of requests (limit ${budget.maxBytes})`));
      return false;
    }
    this.serve(req, held);
    return true;
  }

  /**
   * A write that would create a session (its id is unknown to the node and it does not claim
   * earlier writes) is counted against the session quotas before it is proposed. Returns the
   * refusal, if any.
   */
  private admitSession(req: Exclude<ClientRequest, { op: 'hello' }>): QuorumKvError | undefined {
    const sessions = this.s.sessions;
    if (!sessions || !('session' in req)) return undefined;
    const { id, ackedBelow } = req.session;
    if (ackedBelow > 1 || this.createdSessions.has(id) || sessions.known(id)) return undefined;
    try {
      sessions.quota.admit(this.remoteAddress, this.createdSessions.size);
    } catch (e) {
      if (e instanceof QuorumKvError) return e;
      throw e;
    }
    this.createdSessions.add(id);
    return undefined;
  }

  private onHello(id: number, version: number): void {
    if (this.helloDone) return this.fail(1002, 'hello sent twice');
    if (version !== PROTOCOL_VERSION) {
      const e = new ProtocolError(`protocol version ${version} is not supported; this node speaks ${PROTOCOL_VERSION}`);
      this.answerError(id, e);
      return this.fail(1002, e.message);
    }
    let identity;
    try {
      identity = this.s.service.identity();
    } catch (e) {
      this.s.logger.error({ err: String(e) }, 'service.identity() threw');
      this.answerError(id, new InternalError());
      return this.fail(1011, 'internal error');
    }
    this.helloDone = true;
    clearTimeout(this.helloTimer);
    const result: HelloResult = { version: PROTOCOL_VERSION, ...identity, limits: this.s.limits };
    this.send({ id, ok: true, result });
  }

  private serve(req: Exclude<ClientRequest, { op: 'hello' | 'watch' | 'watchAck' | 'watchCancel' }>, bytes: number): void {
    const timeoutMs = req.timeoutMs ?? this.s.defaultTimeoutMs;
    const expiresMs = Date.now() + timeoutMs;
    const write = req.op === 'put' || req.op === 'delete' || req.op === 'cas' || req.op === 'txn';
    const entry: Inflight = { id: req.id, ctx: new RequestContext(expiresMs), expiresMs, answered: false, write, bytes };
    this.inflight.set(req.id, entry);
    this.deadlines.arm(expiresMs);
    const ctx = entry.ctx;
    let p: Promise<unknown>;
    try {
      p = this.call(req, ctx);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (result) => this.settle(req.id, entry, { id: req.id, ok: true, result }),
      (err: unknown) => this.settle(req.id, entry, this.errorResponse(req.id, err)),
    );
  }

  private call(req: Exclude<ClientRequest, { op: 'hello' | 'watch' | 'watchAck' | 'watchCancel' }>, ctx: CallContext): Promise<unknown> {
    const svc = this.s.service;
    switch (req.op) {
      case 'get':
        return svc.get({ key: req.key, consistency: req.consistency, ...(req.revision === undefined ? {} : { revision: req.revision }) }, ctx);
      case 'put':
        return svc.put({ key: req.key, value: req.value, session: req.session }, ctx);
      case 'delete':
        return svc.delete({ key: req.key, session: req.session }, ctx);
      case 'cas':
        return svc.cas({ key: req.key, condition: req.condition, action: req.action, session: req.session }, ctx);
      case 'range': {
        const maxResultBytes = this.s.limits.maxFrameBytes - FRAME_OVERHEAD_BYTES_MAX - req.limit * RANGE_ITEM_OVERHEAD_BYTES;
        const { id: _id, op: _op, timeoutMs: _timeoutMs, ...args } = req;
        return svc.range({ ...args, maxResultBytes }, ctx);
      }
      case 'status':
        return svc.status(ctx);
      case 'compact':
        return svc.compact({ revision: req.revision }, ctx);
      case 'txn':
        return svc.txn({ compare: req.compare, success: req.success, failure: req.failure, session: req.session }, ctx);
    }
  }

  private onTimeout(entry: Inflight): void {
    if (entry.answered) return;
    // A write still running here was handed to the service, which proposes it at once (a refusal
    // before proposing would have settled already): its outcome is unknown, not "failed".
    const err = entry.write
      ? new IndeterminateError('the node did not finish the write before its deadline; it may have been applied')
      : new TimeoutError('the node did not finish the request before its deadline');
    entry.ctx.abort(err);
    entry.answered = true;
    entry.expiresMs = Number.POSITIVE_INFINITY;
    this.send({ id: entry.id, ok: false, error: errorToWire(err) });
    // The entry stays in `inflight` until the service settles: it still holds node resources.
  }

  private settle(id: number, entry: Inflight, response: ClientResponse): void {
    // Called exactly once per served request, when the service settles (also after a shutdown).
    if (entry.bytes > 0) this.s.requestBudget?.give(entry.bytes);
    this.inflight.delete(id);
    if (this.inflight.size === 0) this.deadlines.stop();
    if (entry.answered || this.closing) return;
    entry.answered = true;
    this.send(response);
  }

  private errorResponse(id: number, err: unknown): ClientResponse {
    if (!(err instanceof QuorumKvError)) {
      this.s.logger.error({ remote: this.remote, err: err instanceof Error ? err.stack : String(err) }, 'service threw an untyped error');
    }
    return { id, ok: false, error: errorToWire(err) };
  }

  private answerError(id: number, err: QuorumKvError): void {
    this.send({ id, ok: false, error: errorToWire(err) });
  }

  private send(response: ClientResponse): void {
    if (this.closing || this.ws.readyState !== this.ws.OPEN) return;
    if (!response.ok) this.s.onError(response.error.code);
    let frame: Uint8Array;
    try {
      frame = encodeFrame(response, this.s.limits.maxFrameBytes);
    } catch (e) {
      const err = e instanceof TooLargeError ? e : new InternalError();
      if (!(e instanceof TooLargeError)) this.s.logger.error({ err: String(e) }, 'could not encode an answer');
      frame = encodeFrame({ id: response.id, ok: false, error: errorToWire(err) }, this.s.limits.maxFrameBytes);
    }
    this.sendBytes(frame);
  }

  /** Writes an encoded frame (corked with the turn's others); drops a client too slow to read. */
  private sendBytes(frame: Uint8Array): void {
    this.corkForThisTurn();
    this.ws.send(frame);
    if (this.ws.bufferedAmount > this.s.maxBufferedBytes) {
      this.s.logger.warn({ remote: this.remote, bufferedBytes: this.ws.bufferedAmount }, 'client too slow; dropping it');
      this.terminate();
    }
  }

  /** Sends one watch stream frame (its events encoded once for every watcher they go to). */
  private pushWatch(id: number, result: WatchResult): void {
    if (this.closing || this.ws.readyState !== this.ws.OPEN) return;
    let frame: Uint8Array;
    try {
      frame = encodeWatchFrame(id, result, this.s.limits.maxFrameBytes);
    } catch (e) {
      return this.send({ id, ok: false, error: errorToWire(e instanceof TooLargeError ? e : new InternalError()) });
    }
    this.sendBytes(frame);
  }

  /**
   * Answers completed in one turn (typically a whole applied batch) leave in one socket write:
   * the socket is corked at the first answer and uncorked once the turn's promise callbacks have
   * run. On loopback each write costs a syscall plus the receiver's TCP work, so one write per
   * answer was about a tenth of a busy leader's CPU.
   */
  private corkForThisTurn(): void {
    if (this.corked) return;
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (!socket) return;
    this.corked = true;
    socket.cork();
    process.nextTick(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /** Closes the connection because the client broke the protocol. */
  fail(code: number, reason: string): void {
    if (this.closing) return;
    this.s.logger.warn({ remote: this.remote, code, reason }, 'closing client connection');
    this.shutdown(new ClosedError(`connection closed: ${reason}`));
    this.ws.close(code, fitCloseReason(reason)); // bytes, not characters: a reason may quote the frame
  }

  /** Aborts in-flight work and stops answering. */
  shutdown(reason: QuorumKvError): void {
    this.closing = true;
    clearTimeout(this.helloTimer);
    this.deadlines.stop();
    for (const entry of this.inflight.values()) entry.ctx.abort(reason);
    this.inflight.clear();
    this.watches.cancelAll();
  }

  terminate(): void {
    this.shutdown(new ClosedError('connection terminated'));
    this.ws.terminate();
  }

  /**
   * Liveness sweep: terminate if the last ping went unanswered, else ping again. A connection
   * whose partly received frame has not completed within the default request timeout is closed:
   * its bytes hold the node's request budget.
   */
  sweep(): void {
    if (!this.alive) {
      this.s.logger.info({ remote: this.remote }, 'client answered no ping; terminating');
      return this.terminate();
    }
    if ((this.meter?.waitingMs() ?? 0) > this.s.defaultTimeoutMs) {
      this.fail(1008, 'a frame did not finish arriving in time');
      return this.terminate(); // its close frame would queue behind the unfinished one
    }
    this.alive = false;
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  closeForShutdown(): void {
    this.shutdown(new ClosedError('the node is shutting down'));
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(1001, 'node shutting down');
    }
  }

  get socket(): WebSocket {
    return this.ws;
  }
}

function refuse(socket: Duplex, status: string): void {
  try {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  } catch {
    // The socket is already gone; nothing to tell it.
  }
  socket.destroy();
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Creates the `/client` WebSocket endpoint around a {@link KvService}. The node's HTTP server
 * routes upgrade requests for `/client` to `handleUpgrade` (ws `noServer` mode).
 *
 * @example
 * ```ts
 * const endpoint = attachClientEndpoint({ service, logger });
 * httpServer.on('upgrade', (req, socket, head) => {
 *   if (req.url?.startsWith('/client')) endpoint.handleUpgrade(req, socket, head);
 * });
 * ```
 */
export function attachClientEndpoint(options: ClientEndpointOptions): ClientEndpoint {
  const s = settingsOf(options);
  const wss = new WebSocketServer({ noServer: true, maxPayload: s.limits.maxFrameBytes, perMessageDeflate: false });
  const connections = new Set<Connection>();
  let closed = false;
  const pinger = setInterval(() => {
    for (const c of connections) c.sweep();
    s.sessions?.quota.sweep();
  }, s.pingIntervalMs);
  pinger.unref();

  /** Meters a connection's incoming bytes against the request budget; `stalled` closes it. */
  const meterOf = (budget: ByteBudget, ws: WebSocket, socket: Duplex, stalled: () => void): ArrivalMeter => {
    const meter = new ArrivalMeter(budget, socket, STALLED_MS, stalled);
    // Before ws's own listener: bytes are counted before the parser can complete a frame with them.
    socket.prependListener('data', (chunk: Buffer) => meter.arrived(chunk.length));
    ws.on('ping', (d: Buffer) => meter.control(d.length));
    ws.on('pong', (d: Buffer) => meter.control(d.length));
    ws.once('close', () => meter.close());
    return meter;
  };

  const onConnection = (ws: WebSocket, req: IncomingMessage): void => {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    let conn: Connection | undefined;
    const stalled = () => {
      s.logger.warn({ remote }, 'client connection stalled on the request budget; closing it');
      s.onRefused('stalled');
      conn?.fail(1013, 'the node is out of request budget; try again later');
      // The socket is paused mid-frame: the client's close frame would never be read. Cut it
      // once the close frame (with the reason) had a moment to leave.
      setTimeout(() => conn?.terminate(), STALLED_CLOSE_GRACE_MS).unref();
    };
    const meter = s.requestBudget ? meterOf(s.requestBudget, ws, req.socket, stalled) : undefined;
    conn = new Connection(ws, s, remote, req.socket.remoteAddress, meter);
    connections.add(conn);
    s.logger.debug({ remote, connections: connections.size }, 'client connected');
    ws.on('close', (code, reason) => {
      connections.delete(conn);
      conn.shutdown(new ClosedError('connection closed'));
      s.logger.debug({ remote, code, reason: reason.toString() }, 'client disconnected');
    });
  };

  return {
    handleUpgrade(req, socket, head) {
      if (closed) return refuse(socket, '503 Service Unavailable');
      if (pathOf(req) !== CLIENT_PATH) return refuse(socket, '404 Not Found');
      if (connections.size >= s.maxConnections) {
        s.logger.warn({ connections: connections.size }, 'client connection limit reached; refusing');
        return refuse(socket, '503 Service Unavailable');
      }
      socket.on('error', () => {}); // errors before the upgrade completes must not crash the node
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req));
    },
    get connectionCount() {
      return connections.size;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(pinger);
      const gone = [...connections].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.socket.readyState === c.socket.CLOSED) return resolve();
            c.socket.once('close', () => resolve());
            const t = setTimeout(() => c.terminate(), CLOSE_GRACE_MS);
            t.unref();
            c.closeForShutdown();
          }),
      );
      await Promise.all(gone);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
