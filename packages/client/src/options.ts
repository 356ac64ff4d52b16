// Client options, their defaults, and their validation (once, in connect()).

import { InvalidArgumentError, RANGE_LIMIT_MAX, REQUEST_TIMEOUT_MS_MAX, WATCH_WAIT_MS_MAX } from '@quorumkv/protocol';
import type { BackoffPolicy } from './backoff.js';
import type { WebSocketFactory } from './websocket.js';

/** Options of {@link connect}. Only `endpoints` is required. */
export interface ConnectOptions {
  /** Some nodes of the cluster, `host:port` or `ws[s]://host:port`. Others are learnt from leader hints. */
  endpoints: string[];
  /** Default deadline of every call, in ms, retries included. Default 5000. */
  timeoutMs?: number;
  /**
   * Longest wait for one attempt on one node, in ms, before trying again (possibly elsewhere) within
   * the call's deadline. Guards against a node that accepts requests but never answers. Default 2000.
   */
  attemptTimeoutMs?: number;
  /**
   * How long an idle watch request waits at a node before it is answered with progress, in ms
   * (the interval of progress notifications). Longer means fewer requests from idle watches; a
   * node that stops answering is given up after this plus `attemptTimeoutMs`. Default 5000.
   */
  watchProgressMs?: number;
  /** Longest wait for a connection plus hello, in ms. Also bounds `connect()` itself. Default 2000. */
  connectTimeoutMs?: number;
  /** Back-off between reconnects to the same node. Default 50 ms doubling to 1000 ms, jittered. */
  reconnectBackoff?: Partial<BackoffPolicy>;
  /** Back-off between retries of a call (no leader, repeated redirects). Default 10 ms doubling to 500 ms. */
  retryBackoff?: Partial<BackoffPolicy>;
  /** Most attempts one call makes before giving up with QKV_UNAVAILABLE. Default 100. */
  maxAttemptsPerCall?: number;
  /** Most calls in progress at once in this client; more are refused with QKV_BUSY. Default 10 000. */
  maxPendingCalls?: number;
  /** Most nodes the client keeps track of (seed endpoints plus hinted ones). Default 64. */
  maxKnownNodes?: number;
  /** Largest frame accepted from a node, in bytes. Default 8 MiB. */
  maxFrameBytes?: number;
  /** Items per page that `range` asks for when the call does not say. Default 500. */
  rangePageSize?: number;
  /** How to open WebSockets (tests inject one). Default: global `WebSocket`, else the `ws` package. */
  webSocketFactory?: WebSocketFactory;
  /** Source of randomness in [0, 1) for jitter and node choice. Default `Math.random`; seed it in tests. */
  random?: () => number;
  /** The exactly-once session id. Default: a random UUID. Never share one between live clients. */
  sessionId?: string;
  /**
   * Called after each failed attempt that the client will retry (for logs and metrics; must not
   * throw or block). Not called for the final error, which the call itself rejects with.
   */
  onRetry?: (event: RetryEvent) => void;
  /**
   * Maps an address a node advertises (in a leader hint) to one this client can reach, e.g. when
   * nodes advertise container names and the client connects through published ports. Return
   * `undefined` to ignore the advertised address and route only among nodes already known.
   * Hints are matched by node id first; this is consulted only for nodes not yet known.
   */
  mapAddress?: (advertised: string, nodeId: string) => string | undefined;
  /**
   * TLS (`wss://`): the CA bundle that signs the nodes' certificates (PEM; default: the system's
   * CAs) and, for a cluster run with `--client-cert-auth`, this client's certificate and key. The
   * node's certificate must name the host the client dials (server-name verification is on).
   * Needs the `ws` package (Node), since a browser's WebSocket takes no TLS options.
   */
  tls?: ClientTlsOptions;
}

/** The TLS material of {@link ConnectOptions.tls}; PEM text or bytes, as Node's `tls.connect` takes. */
export interface ClientTlsOptions {
  ca?: string | Uint8Array;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
}

/** One retried attempt, as passed to `onRetry`. */
export interface RetryEvent {
  /** The operation: 'get', 'put', 'delete', 'cas', 'range', 'status', 'compact' or 'watch' (a watch stream that ended and is reopened). */
  op: string;
  /** The node that failed, `host:port`. */
  address: string;
  /** Why (its `code` says what kind of failure). */
  error: Error & { code: string };
  /** 1 for the first attempt of the call. */
  attempt: number;
  /** How long the client waits before the next attempt, in ms. */
  delayMs: number;
}

/** Options with every default filled in. */
export interface ResolvedOptions {
  endpoints: string[];
  timeoutMs: number;
  attemptTimeoutMs: number;
  watchProgressMs: number;
  connectTimeoutMs: number;
  reconnectBackoff: BackoffPolicy;
  retryBackoff: BackoffPolicy;
  maxAttemptsPerCall: number;
  maxPendingCalls: number;
  maxKnownNodes: number;
  maxFrameBytes: number;
  rangePageSize: number;
  webSocketFactory: WebSocketFactory | undefined;
  random: () => number;
  sessionId: string | undefined;
  onRetry: ((event: RetryEvent) => void) | undefined;
  mapAddress: ((advertised: string, nodeId: string) => string | undefined) | undefined;
  tls: ClientTlsOptions | undefined;
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

function policy(name: string, p: Partial<BackoffPolicy> | undefined, d: BackoffPolicy): BackoffPolicy {
  const r = { ...d, ...p };
  checkInt(`${name}.initialMs`, r.initialMs, 1, 60_000);
  checkInt(`${name}.maxMs`, r.maxMs, r.initialMs, 60_000);
  if (!(r.multiplier >= 1 && r.multiplier <= 10)) throw new InvalidArgumentError(`${name}.multiplier must be in [1, 10]`);
  return r;
}

/** Fills defaults and validates; throws {@link InvalidArgumentError} naming the bad option. */
export function resolveOptions(o: ConnectOptions): ResolvedOptions {
  if (!o || !Array.isArray(o.endpoints) || o.endpoints.length === 0) {
    throw new InvalidArgumentError('endpoints must be a non-empty array of "host:port" strings');
  }
  const maxKnownNodes = checkInt('maxKnownNodes', o.maxKnownNodes ?? 64, 1, 1024);
  if (o.endpoints.length > maxKnownNodes) throw new InvalidArgumentError(`more than maxKnownNodes (${maxKnownNodes}) endpoints`);
  const timeoutMs = checkInt('timeoutMs', o.timeoutMs ?? 5000, 1, REQUEST_TIMEOUT_MS_MAX);
  if (o.sessionId !== undefined && (typeof o.sessionId !== 'string' || o.sessionId.length < 1 || o.sessionId.length > 64)) {
    throw new InvalidArgumentError('sessionId must be a string of 1..64 characters');
  }
  return {
    endpoints: o.endpoints,
    timeoutMs,
    attemptTimeoutMs: checkInt('attemptTimeoutMs', o.attemptTimeoutMs ?? 2000, 1, REQUEST_TIMEOUT_MS_MAX),
    watchProgressMs: checkInt('watchProgressMs', o.watchProgressMs ?? 5000, 0, WATCH_WAIT_MS_MAX),
    connectTimeoutMs: checkInt('connectTimeoutMs', o.connectTimeoutMs ?? 2000, 1, REQUEST_TIMEOUT_MS_MAX),
    reconnectBackoff: policy('reconnectBackoff', o.reconnectBackoff, { initialMs: 50, maxMs: 1000, multiplier: 2 }),
    retryBackoff: policy('retryBackoff', o.retryBackoff, { initialMs: 10, maxMs: 500, multiplier: 2 }),
    maxAttemptsPerCall: checkInt('maxAttemptsPerCall', o.maxAttemptsPerCall ?? 100, 1, 100_000),
    maxPendingCalls: checkInt('maxPendingCalls', o.maxPendingCalls ?? 10_000, 1, 1_000_000),
    maxKnownNodes,
    maxFrameBytes: checkInt('maxFrameBytes', o.maxFrameBytes ?? 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    rangePageSize: checkInt('rangePageSize', o.rangePageSize ?? 500, 1, RANGE_LIMIT_MAX),
    webSocketFactory: o.webSocketFactory,
    random: o.random ?? Math.random,
    sessionId: o.sessionId,
    onRetry: o.onRetry,
    mapAddress: o.mapAddress,
    tls: checkTls(o),
  };
}

function checkTls(o: ConnectOptions): ClientTlsOptions | undefined {
  const t = o.tls;
  if (t === undefined) return undefined;
  if (typeof t !== 'object' || t === null) throw new InvalidArgumentError('tls must be an object { ca?, cert?, key? }');
  for (const k of ['ca', 'cert', 'key'] as const) {
    const v = t[k];
    if (v !== undefined && typeof v !== 'string' && !(v instanceof Uint8Array)) throw new InvalidArgumentError(`tls.${k} must be PEM text or bytes`);
  }
  if ((t.cert === undefined) !== (t.key === undefined)) throw new InvalidArgumentError('tls.cert and tls.key go together (a client certificate needs its key)');
  if (o.endpoints.some((e) => typeof e === 'string' && e.trim().startsWith('ws://'))) throw new InvalidArgumentError('tls is set but an endpoint says ws://; use host:port or wss://');
  return t;
}

/** Per-call options every operation accepts. */
export interface CallOptions {
  /** Deadline for this call, in ms, retries included. Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Aborts the call; it then rejects with `QKV_ABORTED` (a write's outcome is then unknown). */
  signal?: AbortSignal;
}

/** Validates per-call options; returns the deadline in ms. */
export function callTimeoutMs(call: CallOptions | undefined, defaultMs: number): number {
  if (call?.timeoutMs === undefined) return defaultMs;
  return checkInt('timeoutMs', call.timeoutMs, 1, REQUEST_TIMEOUT_MS_MAX);
}
