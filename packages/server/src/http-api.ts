// The HTTP API: /v1/kv/{key}, /v1/kv?prefix=, /v1/status, /health, /ready, /metrics, and the status
// page: /ui (and / redirecting to it), /v1/cluster and /v1/events (cluster-view.ts, status-page.ts).
// Any node accepts any request: a follower forwards writes to the leader it knows.
// Errors are JSON {"code": "QKV_…", "message": …}; nothing in a request can crash the node.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import {
  BusyError,
  IndeterminateError,
  InvalidArgumentError,
  NotLeaderError,
  QuorumKvError,
  TimeoutError,
  TooLargeError,
  CompactedError,
  UnavailableError,
  type CallContext,
} from '@quorumkv/protocol';
import type { Command } from '@quorumkv/storage';
import type { QuorumKvNode } from './node.js';
import { READY_MAX_APPLY_LAG } from './node.js';
import type { WatchHub } from './watch-hub.js';
import { serveWatchStream } from './watch-sse.js';
import { clientFrameBytesMax } from './config.js';
import { NodeKvService, operatorWarnings, pageRange, throwIfApplyError } from './kv-service.js';
import type { ByteBudget } from './admission.js';
import type { PeerHttp } from './peer-http.js';
import { ClusterViewer, nodeEvents } from './cluster-view.js';
import type { StatusAnswer } from './health-cli.js';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page.js';
import { type JsonEncoding, parseTxnJson, txnResultJson } from './http-txn.js';
import { type PreparedTxn, prepareTxn, toTxnResult } from './txn-command.js';
import { IDEMPOTENCY_HEADER, idempotencyTag } from './idempotency-key.js';
import { isAdminPath, relayedAuthorization, requireAdminToken } from './admin-auth.js';

const FORWARDED_HEADER = 'x-qkv-forwarded';
const MAX_RANGE_LIMIT = 10_000;
const DEFAULT_RANGE_LIMIT = 1000;
/**
 * Most bytes of rows in one HTTP range page (the JSON answer is about 1-2x that): bigger listings
 * take more pages (`more`). Rows are also charged to the node's range budget while they are read.
 */
export const HTTP_RANGE_PAGE_BYTES_MAX = 16 * 1024 * 1024;
/** `Retry-After` of a body refused for lack of buffered-request budget. */
export const BODY_BUSY_RETRY_AFTER_MS = 1000;
/** `Retry-After` of a state hash refused because one is already being computed. */
export const STATE_HASH_RETRY_AFTER_MS = 1000;
/** Upper bound on how long a forwarded request may take beyond the request timeout. */
const FORWARD_SLACK_MS = 1000;

const STATUS_BY_CODE: Record<string, number> = {
  QKV_INVALID_ARGUMENT: 400,
  QKV_AUTH_FAILED: 401,
  QKV_NOT_FOUND: 404,
  QKV_METHOD_NOT_ALLOWED: 405,
  QKV_CAS_FAILED: 409,
  QKV_CONFLICT: 409,
  QKV_MAINTENANCE: 409,
  QKV_NOT_CAUGHT_UP: 409,
  QKV_SESSION_EXPIRED: 409,
  // The history asked for is gone for good: a retry at the same revision never succeeds.
  QKV_COMPACTED: 410,
  QKV_TOO_LARGE: 413,
  // An Idempotency-Key sent again with a different request (method, path, query or body).
  QKV_IDEMPOTENCY_KEY_REUSED: 422,
  // Decided in the log: the same request fails the same way until the data changes.
  QKV_LIMIT_EXCEEDED: 422,
  QKV_QUOTA_EXCEEDED: 429,
  QKV_NOT_LEADER: 503,
  QKV_NO_LEADER: 503,
  QKV_BUSY: 503,
  QKV_UNAVAILABLE: 503,
  // A node that cannot persist (storage-fault.ts): not applied, ask another node.
  QKV_STORAGE_UNAVAILABLE: 503,
  QKV_DISK_FULL: 507,
  // For a write, 503 always means "not applied"; an unknown outcome never shares it (a proxy that
  // retries 503s elsewhere must not repeat a write that may have been applied). 504 "the gateway
  // did not get an answer in time" is the one status for it, and carries no Retry-After.
  QKV_TIMEOUT: 504,
  QKV_INDETERMINATE: 504,
};

class HttpError extends QuorumKvError {}

/**
 * The request target as a URL. A target the URL parser refuses (`//`, `//host:x`, a bad port)
 * is the client's error, answered 400 — not an unexpected error.
 */
export function requestUrl(target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://node');
  } catch {
    throw new InvalidArgumentError(`the request target is not a valid path: ${JSON.stringify((target ?? '').slice(0, 100))}`);
  }
}

export interface AdminRoutes {
  /** Returns true when it handled the request. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
}

/** What an {@link HttpApi} shares with the rest of the node. */
export interface HttpApiOptions {
  /** The node's key-value service (it holds the node's range budget). */
  service: NodeKvService;
  /** The node's budget of buffered request bytes (HTTP bodies and WebSocket frames being served). */
  requestBudget: ByteBudget;
  /** The node's watch hub: serves GET /v1/watch. Default: none (404). */
  watches?: WatchHub;
  /** How this node reaches the leader to forward a write (HTTP, or HTTPS with the peer certificate). */
  peerHttp: PeerHttp;
}

export class HttpApi {
  private readonly service: NodeKvService;
  private readonly requestBudget: ByteBudget;
  private readonly watches: WatchHub | undefined;
  private readonly peerHttp: PeerHttp;
  /** True while a /v1/state-hash scan runs: one at a time per node. */
  private stateHashRunning = false;
  /** The /v1/cluster fan-out (one in flight per node, however many pages poll). */
  private readonly clusterViewer: ClusterViewer;
  admin: AdminRoutes | undefined;

  constructor(
    private readonly node: QuorumKvNode,
    options: HttpApiOptions,
  ) {
    this.service = options.service;
    this.requestBudget = options.requestBudget;
    this.watches = options.watches;
    this.peerHttp = options.peerHttp;
    this.clusterViewer = new ClusterViewer(node, () => this.statusJson() as unknown as StatusAnswer, (peerId) => this.peerHttp.tlsFor(peerId));
  }

  /** The http.Server request listener. Never throws. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((e: unknown) => this.sendError(res, e));
  };

  close(): void {
    this.peerHttp.close();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req.url);
    const path = url.pathname;
    if (isAdminPath(path)) requireAdminToken(req, this.node.cfg.clusterSecret);
    if (path.startsWith('/v1/kv/')) return this.kv(req, res, url);
    if (path === '/v1/kv') return this.rangeRoute(req, res, url);
    if (path === '/v1/watch' && this.watches) {
      const hub = this.watches;
      return this.only(req, 'GET', () => serveWatchStream(req, res, url, hub, this.node.cfg.maxKeyBytes));
    }
    if (path === '/v1/txn') return this.only(req, 'POST', () => this.txnRoute(req, res, url));
    if (path === '/v1/compact') return this.only(req, 'POST', () => this.compactRoute(req, res, url));
    if (path === '/v1/status') return this.only(req, 'GET', () => this.sendJson(res, 200, this.statusJson()));
    if (path === '/v1/state-hash') return this.only(req, 'GET', () => this.stateHash(res));
    if (path === '/health') return this.only(req, 'GET', () => this.sendJson(res, 200, { ok: true, id: this.node.id }));
    if (path === '/ready') return this.only(req, 'GET', () => this.ready(res));
    if (path === '/metrics') return this.only(req, 'GET', () => this.metricsRoute(res));
    if (path === '/ui') return this.only(req, 'GET', () => this.statusPage(res));
    if (path === '/') return this.only(req, 'GET', () => this.redirect(res, '/ui'));
    if (path === '/v1/cluster') return this.only(req, 'GET', async () => this.sendJson(res, 200, await this.clusterViewer.view()));
    if (path === '/v1/events') return this.only(req, 'GET', async () => this.sendJson(res, 200, await nodeEvents(this.node)));
    if (this.admin && (await this.admin.handle(req, res, url))) return;
    throw new HttpError('QKV_NOT_FOUND', `no route ${path}`);
  }

  private only(req: IncomingMessage, method: string, fn: () => void | Promise<void>): void | Promise<void> {
    if (req.method !== method) throw new HttpError('QKV_METHOD_NOT_ALLOWED', `${req.method} is not allowed here; use ${method}`);
    return fn();
  }

  private async kv(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const key = this.parseKey(url.pathname.slice('/v1/kv/'.length));
    const ctx = this.callContext(req);
    switch (req.method) {
      case 'GET':
      case 'HEAD': {
        const { item } = await this.service.get({ key, consistency: this.consistency(url), ...this.revisionParam(url) }, ctx);
        if (!item) throw new HttpError('QKV_NOT_FOUND', 'key not found');
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': item.value.length,
          'x-qkv-mod-revision': item.modRevision,
          'x-qkv-create-revision': item.createRevision,
          'x-qkv-version': item.version,
        });
        res.end(req.method === 'HEAD' ? undefined : item.value);
        this.count('get', 'ok');
        return;
      }
      case 'PUT': {
        const value = await this.readBody(req, res);
        const ifRev = this.intParam(url, 'ifModRevision');
        const cmd: Command =
          ifRev !== undefined ? { op: 'cas', key, cond: { modRevision: ifRev }, then: { op: 'put', value } } : { op: 'put', key, value };
        return this.write(req, res, cmd, value, ctx);
      }
      case 'DELETE': {
        const ifRev = this.intParam(url, 'ifModRevision');
        const cmd: Command = ifRev !== undefined ? { op: 'cas', key, cond: { modRevision: ifRev }, then: { op: 'del' } } : { op: 'del', key };
        return this.write(req, res, cmd, undefined, ctx);
      }
      default:
        throw new HttpError('QKV_METHOD_NOT_ALLOWED', `${req.method} is not allowed on /v1/kv/{key}`);
    }
  }

  /**
   * POST /v1/txn: a JSON transaction (http-txn.ts), forwarded to the leader like any write.
   * The answer is 200 whichever branch ran (`succeeded` says which).
   */
  private async txnRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const encoding = this.encodingParam(url);
    const body = await this.readBody(req, res, clientFrameBytesMax(this.node.cfg));
    const p = prepareTxn(parseTxnJson(body, encoding, this.limits()));
    return this.write(req, res, p.cmd, body, this.callContext(req), { txn: p, encoding });
  }

  /** DELETE /v1/kv?prefix=… or ?start=…&end=…: a range delete, one command at one revision. */
  private async deleteRangeRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const enc = new TextEncoder();
    const p = (n: string) => (url.searchParams.has(n) ? enc.encode(url.searchParams.get(n)!) : undefined);
    const prefix = p('prefix');
    const start = p('start');
    if ((prefix === undefined) === (start === undefined)) throw new InvalidArgumentError('a range delete needs exactly one of ?prefix= and ?start=');
    const end = p('end');
    if (prefix !== undefined && end !== undefined) throw new InvalidArgumentError('a range delete with a prefix takes no end');
    const op = prefix !== undefined ? { op: 'deleteRange' as const, prefix } : { op: 'deleteRange' as const, start: start!, ...(end ? { end } : {}) };
    const t = prepareTxn({ compare: [], success: [op], failure: [] });
    return this.write(req, res, t.cmd, undefined, this.callContext(req), { txn: t, encoding: 'utf8' });
  }

  /** `?encoding=base64` or utf8 (the default). */
  private encodingParam(url: URL): JsonEncoding {
    const e = url.searchParams.get('encoding') ?? 'utf8';
    if (e !== 'utf8' && e !== 'base64') throw new InvalidArgumentError('encoding must be utf8 or base64');
    return e;
  }

  /** The node's key and value limits, as the protocol's validation takes them. */
  private limits(): { maxKeyBytes: number; maxValueBytes: number; maxFrameBytes: number } {
    const c = this.node.cfg;
    return { maxKeyBytes: c.maxKeyBytes, maxValueBytes: c.maxValueBytes, maxFrameBytes: clientFrameBytesMax(c) };
  }

  private async write(
    req: IncomingMessage,
    res: ServerResponse,
    cmd: Command,
    body: Uint8Array | undefined,
    ctx: CallContext,
    txn?: { txn: PreparedTxn; encoding: JsonEncoding },
  ): Promise<void> {
    if (!this.node.isLeader() && this.node.leaderId() !== null && req.headers[FORWARDED_HEADER] === undefined) {
      return this.forward(req, res, body);
    }
    const idem = idempotencyTag(req, body);
    const r = await this.node.write(idem ? ({ ...cmd, idem } as Command) : cmd, ctx);
    if (txn) {
      const result = toTxnResult(txn.txn, r);
      const deleteRange = txn.txn.wire.success[0]?.op === 'deleteRange' && txn.txn.wire.success.length === 1 && txn.txn.wire.failure.length === 0;
      const first = result.results[0];
      if (deleteRange && first?.op === 'deleteRange') this.sendJson(res, 200, { deleted: first.deleted, revision: result.revision });
      else this.sendJson(res, 200, txnResultJson(result, txn.encoding));
      this.count(deleteRange ? 'deleteRange' : 'txn', 'ok');
      return;
    }
    throwIfApplyError(r);
    if (r.op === 'put') this.sendJson(res, 200, { revision: r.revision });
    else if (r.op === 'del') this.sendJson(res, 200, { deleted: r.deleted, revision: r.revision });
    else if (r.op === 'cas') {
      if (!r.succeeded) {
        this.sendJson(res, 409, { code: 'QKV_CAS_FAILED', message: 'modRevision did not match', actualModRevision: r.current?.modRevision ?? 0 });
        return;
      }
      this.sendJson(res, 200, { revision: r.revision });
    }
    this.count(cmd.op, 'ok');
  }

  /** Sends the request to the leader and relays its answer. */
  private forward(req: IncomingMessage, res: ServerResponse, body: Uint8Array | undefined): Promise<void> {
    const hint = this.node.leaderHint();
    if (!hint || !hint.address) throw this.node.notLeader();
    const [host, port] = splitHostPort(hint.address);
    return new Promise<void>((resolve, reject) => {
      const out = this.peerHttp.request(
        hint.id,
        {
          host,
          port,
          method: req.method,
          path: req.url,
          timeout: this.node.cfg.requestTimeoutMs + FORWARD_SLACK_MS,
          headers: {
            [FORWARDED_HEADER]: this.node.id,
            ...relayedAuthorization(req),
            'content-type': 'application/octet-stream',
            ...(req.headers[IDEMPOTENCY_HEADER] !== undefined ? { [IDEMPOTENCY_HEADER]: req.headers[IDEMPOTENCY_HEADER] } : {}),
            ...(body ? { 'content-length': body.length } : {}),
          },
        },
        (up) => {
          const headers: http.OutgoingHttpHeaders = {};
          for (const h of ['content-type', 'retry-after', 'x-qkv-mod-revision', 'x-qkv-create-revision', 'x-qkv-version']) {
            if (up.headers[h] !== undefined) headers[h] = up.headers[h];
          }
          res.writeHead(up.statusCode ?? 502, { ...headers, 'x-qkv-forwarded-to': hint.id });
          up.pipe(res);
          up.on('end', resolve);
          up.on('error', reject);
        },
      );
      watchForwardedRequest(out, hint.id, reject);
      out.end(body);
    });
  }

  /** POST /v1/compact?revision=n: compacts history at n on every node, through the log (forwarded to the leader like a write). */
  private async compactRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { revision } = this.revisionParam(url);
    if (revision === undefined) throw new InvalidArgumentError('compact needs ?revision=n');
    if (!this.node.isLeader() && this.node.leaderId() !== null && req.headers[FORWARDED_HEADER] === undefined) return this.forward(req, res, undefined);
    this.sendJson(res, 200, await this.service.compact({ revision }, this.callContext(req)));
    this.count('compact', 'ok');
  }

  private async rangeRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method === 'DELETE') return this.deleteRangeRoute(req, res, url);
    if (req.method !== 'GET') throw new HttpError('QKV_METHOD_NOT_ALLOWED', 'use GET (or DELETE) /v1/kv?prefix=…');
    const enc = new TextEncoder();
    const p = (n: string) => (url.searchParams.has(n) ? enc.encode(url.searchParams.get(n)!) : undefined);
    const limit = this.intParam(url, 'limit') ?? DEFAULT_RANGE_LIMIT;
    if (limit < 1 || limit > MAX_RANGE_LIMIT) throw new InvalidArgumentError(`limit must be in [1, ${MAX_RANGE_LIMIT}]`);
    const base64 = url.searchParams.get('encoding') === 'base64';
    const ctx = this.callContext(req);
    const prefix = p('prefix');
    const args = prefix !== undefined ? { prefix } : { start: p('start') ?? new Uint8Array(0), end: p('end') };
    const after = p('after');
    const at = this.revisionParam(url);
    if (!pageRange({ ...args, after })) return this.sendJson(res, 200, { items: [], more: false, ...at });
    const page = await this.service.range(
      { ...args, ...(after ? { after } : {}), limit, consistency: this.consistency(url), maxResultBytes: HTTP_RANGE_PAGE_BYTES_MAX, ...at },
      ctx,
    );
    const text = (b: Uint8Array) => (base64 ? Buffer.from(b).toString('base64') : Buffer.from(b).toString('utf8'));
    this.sendJson(res, 200, {
      items: page.items.map((i) => ({
        key: text(i.key),
        value: text(i.value),
        createRevision: i.createRevision,
        modRevision: i.modRevision,
        version: i.version,
      })),
      more: page.more,
      // The next page passes it as ?revision= to see the same state.
      ...(page.revision === undefined ? {} : { revision: page.revision }),
    });
    this.count('range', 'ok');
  }

  statusJson(): Record<string, unknown> {
    const s = this.node.statusView();
    const st = this.node.raw.status();
    const m = this.node.membership();
    const now = Date.now();
    const member = (v: { id: string; address: string; zone?: string }, voter: boolean) => {
      const lc = this.node.lastContact(v.id);
      return {
        id: v.id,
        address: v.address,
        voter,
        zone: v.zone ?? (v.id === this.node.id ? this.node.cfg.zone ?? null : null),
        matchIndex: st.progress?.[v.id]?.match ?? null,
        lastContactMs: v.id === this.node.id ? 0 : lc === undefined ? null : now - lc,
      };
    };
    return {
      id: s.id,
      role: s.role === 'preCandidate' ? 'candidate' : s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      lastIndex: s.lastIndex,
      firstIndex: s.firstIndex,
      appliedHash: s.appliedHash,
      storageShortfall: s.storageShortfall,
      votingSuspended: s.votingSuspended,
      votingSuspendedReason: s.votingSuspendedReason,
      clusterId: this.node.clusterId,
      zone: s.zone ?? null,
      members: [...m.voters.map((v) => member(v, true)), ...m.learners.map((v) => member(v, false))],
      pending: this.node.pendingCounts(),
      fsync: this.node.metrics.fsyncRecent.summary(),
      warnings: operatorWarnings(this.node),
      switches: this.node.opsSwitches.snapshot(),
      peerSafety: {
        refusedMessages: this.node.peerMessagesRefused,
        ignoredMessages: st.ignoredMessages,
        followerLogRegressions: st.followerLogRegressions,
        otherIncarnationDropped: this.node.otherIncarnationDropped(),
      },
      ...(this.node.snapshotStatus ? { snapshots: this.node.snapshotStatus() } : {}),
      ...(this.node.catchupThrottleView ? { catchupThrottle: this.node.catchupThrottleView() } : {}),
    };
  }

  /**
   * A hash over the whole key-value state (and sessions) at the applied index; costs a full scan,
   * so one runs at a time per node and the others get 503 QKV_BUSY with Retry-After.
   */
  private async stateHash(res: ServerResponse): Promise<void> {
    if (this.stateHashRunning) throw new BusyError(STATE_HASH_RETRY_AFTER_MS, 'a state hash is already being computed on this node');
    this.stateHashRunning = true;
    try {
      const { appliedIndex, stateHash } = await this.node.store.kv.stateHashAt();
      this.sendJson(res, 200, { id: this.node.id, appliedIndex, stateHash });
    } finally {
      this.stateHashRunning = false;
    }
  }

  private ready(res: ServerResponse): void {
    const s = this.node.statusView();
    const ok = s.storageShortfall === null && s.leader !== null && s.commitIndex - s.appliedIndex <= READY_MAX_APPLY_LAG;
    this.sendJson(res, ok ? 200 : 503, {
      ready: ok,
      leader: s.leader,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      ...(s.storageShortfall ? { reason: s.storageShortfall.reason } : {}),
    });
  }

  private statusPage(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(STATUS_PAGE_HTML),
      'content-security-policy': STATUS_PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    });
    res.end(STATUS_PAGE_HTML);
  }

  private redirect(res: ServerResponse, to: string): void {
    res.writeHead(302, { location: to, 'content-length': 0 });
    res.end();
  }

  private async metricsRoute(res: ServerResponse): Promise<void> {
    const body = await this.node.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': this.node.metrics.registry.contentType });
    res.end(body);
  }

  // -----------------------------------------------------------------------------------------
  // Parsing helpers: every failure is a 4xx with a code, never an exception that escapes.

  private parseKey(raw: string): Uint8Array {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      throw new InvalidArgumentError('key is not valid percent-encoding');
    }
    const key = new TextEncoder().encode(s);
    if (key.length === 0) throw new InvalidArgumentError('key must not be empty');
    if (key.length > this.node.cfg.maxKeyBytes) throw new InvalidArgumentError(`key is longer than ${this.node.cfg.maxKeyBytes} bytes`);
    return key;
  }

  private consistency(url: URL): 'linearizable' | 'stale' {
    const c = url.searchParams.get('consistency') ?? 'linearizable';
    if (c !== 'linearizable' && c !== 'stale') throw new InvalidArgumentError('consistency must be "linearizable" or "stale"');
    return c;
  }

  /** `?revision=n`: read the store as it was at revision n. */
  private revisionParam(url: URL): { revision?: number } {
    const revision = this.intParam(url, 'revision');
    return revision === undefined ? {} : { revision };
  }

  private intParam(url: URL, name: string): number | undefined {
    const v = url.searchParams.get(name);
    if (v === null) return undefined;
    if (!/^\d{1,15}$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return Number(v);
  }

  private callContext(req: IncomingMessage): CallContext {
    const ac = new AbortController();
    req.on('close', () => {
      if (!req.complete) ac.abort();
    });
    return { signal: ac.signal, deadlineMs: Date.now() + this.node.cfg.requestTimeoutMs };
  }

  /**
   * Reads a PUT body, admitted BEFORE it is read: a declared length above --max-value-bytes is 413
   * at once; a declared length is then taken from the node's request budget whole, and a chunked
   * body chunk by chunk as it arrives (cut off at the value limit or when the budget is out). A
   * body the budget cannot take is answered 503 QKV_BUSY with Retry-After and its connection is
   * closed unread. The bytes go back to the budget when the response is done.
   */
  private readBody(req: IncomingMessage, res: ServerResponse, max = this.node.cfg.maxValueBytes): Promise<Uint8Array> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      req.resume();
      return Promise.reject(new TooLargeError(`the body is larger than ${max} bytes`, max));
    }
    const admission = new BodyAdmission(this.requestBudget, res);
    if (Number.isFinite(declared) && !admission.take(declared)) return Promise.reject(admission.refuse(req));
    return new Promise((resolve, reject) => {
      const body = new BodyBuffer(Number.isFinite(declared) ? declared : undefined);
      // A body holds budget while it arrives: a client that sends it slowly must not hold it long.
      const timeoutMs = this.node.cfg.requestTimeoutMs;
      const timer = setTimeout(() => {
        req.removeAllListeners('data');
        reject(new BodyTimeoutError(timeoutMs));
      }, timeoutMs);
      req.once('close', () => clearTimeout(timer));
      req.on('data', (c: Buffer) => {
        if (body.size + c.length > max) {
          req.removeAllListeners('data');
          req.resume();
          reject(new TooLargeError(`the body is larger than ${max} bytes`, max));
          return;
        }
        if (!Number.isFinite(declared) && !admission.take(c.length)) {
          req.removeAllListeners('data');
          reject(admission.refuse(req));
          return;
        }
        body.add(c);
      });
      req.on('end', () => {
        clearTimeout(timer);
        resolve(body.bytes());
      });
      req.on('error', (e) => reject(new InvalidArgumentError(`could not read the body: ${e.message}`)));
    });
  }

  private sendJson(res: ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private sendError(res: ServerResponse, e: unknown): void {
    const err = e instanceof QuorumKvError ? e : null;
    if (!err) this.node.log.error({ err: e }, 'unexpected error in HTTP handler');
    const code = err?.code ?? 'QKV_INTERNAL';
    const status = err instanceof BodyTimeoutError ? 408 : (STATUS_BY_CODE[code] ?? 500);
    const body: Record<string, unknown> = { code, message: err?.message ?? 'internal error' };
    const headers: http.OutgoingHttpHeaders = {};
    const retryAfterMs = (err as { retryAfterMs?: number } | null)?.retryAfterMs;
    if (retryAfterMs !== undefined) body.retryAfterMs = retryAfterMs;
    if (status === 503) headers['retry-after'] = String(Math.max(1, Math.ceil((retryAfterMs ?? 1000) / 1000)));
    if (err instanceof NotLeaderError && err.leaderHint) body.leader = err.leaderHint;
    if (err instanceof TooLargeError && err.limitBytes !== undefined) body.limitBytes = err.limitBytes;
    if (err instanceof CompactedError && err.compactedRevision !== undefined) body.compactedRevision = err.compactedRevision;
    // The body stays unread: the connection cannot carry another request.
    if (err instanceof BodyRefusedError || err instanceof BodyTimeoutError) headers['connection'] = 'close';
    if (err instanceof BodyRefusedError) this.node.metrics.busyRejections.inc({ kind: 'request-budget' });
    this.count('any', code);
    this.node.metrics.countError('http', code);
    this.sendJson(res, status, body, headers);
  }

  private count(op: string, outcome: string): void {
    this.node.metrics.requests.inc({ op, outcome });
  }
}

/**
 * Turns the failures of a request forwarded to the leader into the truthful error. Until the
 * request is fully sent the leader cannot have acted on it (it reads the whole body before
 * proposing): `QKV_UNAVAILABLE`, not applied. After that — a timeout, a reset, a leader that
 * stopped — it may have proposed the write: `QKV_INDETERMINATE`.
 */
export function watchForwardedRequest(out: http.ClientRequest, leaderId: string, fail: (e: QuorumKvError) => void): void {
  let sent = false;
  out.on('finish', () => (sent = true));
  out.on('timeout', () => out.destroy(new Error('no answer in time')));
  out.on('error', (e) => {
    if (e instanceof QuorumKvError) return fail(e);
    if (!sent) return fail(new UnavailableError(`cannot reach leader ${leaderId}: ${e.message}; the write was not applied`));
    fail(new IndeterminateError(`the request was forwarded to leader ${leaderId}, then ${e.message}; it may have been applied`));
  });
}

/**
 * One request body's share of the node's request budget: bytes taken as the body is admitted,
 * all given back once when the response is done (sent, failed or its connection gone).
 */
class BodyAdmission {
  private held = 0;
  constructor(
    private readonly budget: ByteBudget,
    res: ServerResponse,
  ) {
    res.once('close', () => {
      this.budget.give(this.held);
      this.held = 0;
    });
  }

  /** Takes `bytes` more; false when the budget has no room for them. */
  take(bytes: number): boolean {
    if (!this.budget.tryTake(bytes)) return false;
    this.held += bytes;
    return true;
  }

  /** The refusal of a body that does not fit; the connection closes after the answer, unread. */
  refuse(req: IncomingMessage): BusyError {
    req.resume(); // discard what already arrived; the socket closes after the answer
    return new BodyRefusedError(this.budget);
  }
}

/**
 * A request body as it arrives. With a declared length each chunk is copied into one buffer of
 * that length as it comes (the body exists once, not as chunks plus a joined copy); a chunked
 * body keeps its chunks and joins them once at the end.
 */
class BodyBuffer {
  private readonly whole: Uint8Array | undefined;
  private readonly chunks: Buffer[] = [];
  size = 0;
  constructor(declaredBytes: number | undefined) {
    this.whole = declaredBytes === undefined ? undefined : new Uint8Array(declaredBytes);
  }

  add(c: Buffer): void {
    if (this.whole) this.whole.set(c, this.size);
    else this.chunks.push(c);
    this.size += c.length;
  }

  /** The body; the HTTP parser guarantees a declared length is met exactly. */
  bytes(): Uint8Array {
    if (this.whole) return this.whole;
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** A body that did not arrive within the request timeout (answered 408; nothing was written). */
class BodyTimeoutError extends TimeoutError {
  constructor(timeoutMs: number) {
    super(`the request body did not arrive within ${timeoutMs} ms; nothing was written`);
  }
}

/** QKV_BUSY for a body refused before it was read; the HTTP layer closes its connection. */
class BodyRefusedError extends BusyError {
  constructor(budget: ByteBudget) {
    super(BODY_BUSY_RETRY_AFTER_MS, `the node is buffering ${budget.usedBytes} bytes of requests (limit ${budget.maxBytes}); retry later`);
  }
}

export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}
