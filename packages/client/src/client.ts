// The client: routing (leader for writes and linearizable reads, spread for stale reads), the
// retry loop (leader hints, busy hints, lost connections, all within one deadline), exactly-once
// writes through the session, and close().

import {
  AbortedError,
  BusyError,
  ClosedError,
  IndeterminateError,
  InvalidArgumentError,
  NoLeaderError,
  NotLeaderError,
  ProtocolError,
  QuorumKvError,
  SessionExpiredError,
  TimeoutError,
  UnavailableError,
  DiskFullError,
  StorageUnavailableError,
  writeOutcomeOf,
  checkKey,
  checkValue,
  DEFAULT_LIMITS,
  RANGE_LIMIT_MAX,
  WATCH_EVENTS_MAX,
  type BytesLike,
  type CasAction,
  type CasCondition,
  type ClusterStatus,
  type CompactResult,
  type Consistency,
  type HelloResult,
  type LeaderHint,
  type Limits,
  type Op,
  type RangeRequest,
  type ResultByOp,
  type SessionRef,
} from '@quorumkv/protocol';
import { backoffDelayMs } from './backoff.js';
import { CallSignal, type AbortListener } from './call-signal.js';
import { toItem, type KvItem, type KvTextItem, type ValueFormat } from './item.js';
import { NodeConnection, abortReason, parseEndpoint, type RequestBody, type WatchStreamHandle, type WatchStreamSink } from './node-connection.js';
import { callTimeoutMs, resolveOptions, type CallOptions, type ConnectOptions, type ResolvedOptions } from './options.js';
import { ClientSession, randomSessionId } from './session.js';
import { bytesOf } from './utf8.js';
import { Watch, type WatchOptions, type WatchStreamBody } from './watch.js';
import { rangeBounds, txnResponse, wireTxn, type TxnResponse, type TxnSpec } from './txn.js';
import { defaultWebSocketFactory, type WebSocketFactory } from './websocket.js';

/** Options of `get`. */
export interface GetOptions extends CallOptions {
  /** 'linearizable' (default: served by the leader after ReadIndex) or 'stale' (any node, possibly old). */
  consistency?: Consistency;
  /**
   * Read the key as it was at this revision (a write's `revision`, an item's `modRevision`…).
   * Below the compacted revision: `CompactedError` (`QKV_COMPACTED`, with `compactedRevision`);
   * above the answering node's current revision: `QKV_INVALID_ARGUMENT`.
   */
  revision?: number;
  /** 'bytes' (default) or 'string' (key and value decoded as UTF-8). */
  as?: ValueFormat;
}

/** Options of writes (`put`, `delete`, `cas`). */
export type WriteOptions = CallOptions;

/** The condition part of a `cas`: exactly one of these. */
export type CasIf = { ifModRevision: number } | { ifValue: BytesLike } | { ifAbsent: true };
/** The action part of a `cas`: put `value`, or `delete: true`. */
export type CasThen = { value: BytesLike } | { delete: true };
/** A compare-and-swap: one condition and one action, e.g. `{ ifModRevision: 7, value: 'grace' }`. */
export type CasSpec = CasIf & CasThen;

/** Options of `range`. Give `prefix`, or `start` (and optionally `end`). */
export interface RangeOptions extends CallOptions {
  /** Keys starting with this (empty string = every key). */
  prefix?: BytesLike;
  /** First key (inclusive). */
  start?: BytesLike;
  /** Last key (exclusive); absent = to the end. Only with `start`. */
  end?: BytesLike;
  /** Most items in total. Default: no limit. */
  limit?: number;
  /** Items fetched per round trip. Default: the client's `rangePageSize` (500). */
  pageSize?: number;
  /** As for `get`. */
  consistency?: Consistency;
  /**
   * As for `get`. Absent: the first page is read at the current revision and every later page at
   * that same revision, so the whole range shows one state.
   */
  revision?: number;
  /** 'bytes' (default) or 'string'. */
  as?: ValueFormat;
}

/** Answer of `put` and `cas`. */
export interface WriteResult {
  /**
   * The revision of the write: the cluster's write counter, +1 per applied write (not the Raft
   * index). The same number comes back if the write was retried.
   */
  revision: number;
  /** Term of the leader that committed the write (absent from older servers). */
  term?: number;
}
/** Answer of `delete`. */
export interface DeleteResponse extends WriteResult {
  /** Whether the key existed. */
  deleted: boolean;
}
/** The keys of a range delete: `prefix` (empty = every key), or `start` with an optional exclusive `end`. */
export type KeyRangeSpec = { prefix: BytesLike; start?: undefined; end?: undefined } | { start: BytesLike; end?: BytesLike; prefix?: undefined };
/** Answer of a range delete. */
export interface DeleteRangeResponse {
  /** How many keys were deleted (all at `revision`). */
  deleted: number;
  /** The delete's revision when it deleted a key, else the current revision. */
  revision: number;
}
/** Options of `txn`. */
export interface TxnOptions extends WriteOptions {
  /** Items of get/range results as 'bytes' (default) or 'string'. */
  as?: ValueFormat;
}

type Route = 'leader' | 'any' | 'preferLeader';

/**
 * Longest wait before reconnecting to a node that another node names as leader, however long
 * its own back-off. Short, so a node that comes back as leader is used at once (no circuit
 * breaker), but not zero, so stale hints naming a dead leader do not make every caller hammer it.
 */
const HINTED_NODE_WAIT_MS_MAX = 50;
/** Time kept for a last attempt when a back-off would run past the call's deadline. */
const LAST_ATTEMPT_MS = 50;
type DataOp = Exclude<Op, 'hello' | 'watch' | 'watchAck' | 'watchCancel'>;


/** Per-call retry bookkeeping. */
interface RetryState {
  redirects: number;
  noLeader: number;
  unavailable: number;
  lastError: QuorumKvError | undefined;
}

function asQkv(e: unknown): QuorumKvError {
  return e instanceof QuorumKvError ? e : new UnavailableError('unexpected failure', { cause: e });
}

/**
 * A connection to a quorumkv cluster. Create it with {@link connect}; it finds the leader by
 * itself, retries safely, and makes writes exactly-once. All methods are safe to call
 * concurrently; requests are pipelined over one WebSocket per node.
 */
export class KvClient {
  private readonly nodes: NodeConnection[] = [];
  private leader: NodeConnection | undefined;
  private roundRobin = 0;
  private session: ClientSession;
  private readonly calls = new Set<CallSignal>();
  private closed = false;
  private limits: Limits = DEFAULT_LIMITS;
  private readonly scheme: 'ws' | 'wss';

  /** Use {@link connect}; the constructor does no I/O. */
  constructor(
    private readonly o: ResolvedOptions,
    private readonly webSocketFactory: WebSocketFactory,
  ) {
    this.session = new ClientSession(o.sessionId ?? randomSessionId());
    this.scheme = o.tls !== undefined || o.endpoints.some((e) => e.trim().startsWith('wss://')) ? 'wss' : 'ws';
    for (const e of o.endpoints) {
      const { address, url } = parseEndpointOrThrow(e, this.scheme);
      if (!this.nodes.some((n) => n.address === address)) this.nodes.push(this.newNode(address, url));
    }
  }

  private newNode(address: string, url: string): NodeConnection {
    return new NodeConnection(address, url, {
      webSocketFactory: this.webSocketFactory,
      maxFrameBytes: this.o.maxFrameBytes,
      connectTimeoutMs: this.o.connectTimeoutMs,
      reconnectBackoff: this.o.reconnectBackoff,
      random: this.o.random,
      now: Date.now,
      onHello: (node, hello) => this.onHello(node, hello),
    });
  }

  /**
   * Opens every seed endpoint at once and resolves when one has answered hello; when none has,
   * tries again after the nodes' reconnect back-off, until `connectTimeoutMs`. Called by
   * {@link connect}; not for direct use.
   * @internal
   */
  async start(): Promise<void> {
    const deadlineMs = Date.now() + this.o.connectTimeoutMs;
    const limits = { deadlineMs, signal: new CallSignal() };
    let causes: unknown[] = [];
    for (;;) {
      try {
        await Promise.any(this.nodes.map((n) => n.open(limits)));
        return;
      } catch (e) {
        causes = e instanceof AggregateError ? e.errors : [e];
      }
      const waitMs = Math.max(1, Math.min(...this.nodes.map((n) => n.retryAt)) - Date.now());
      if (Date.now() + waitMs >= deadlineMs) break;
      await new Promise((r) => setTimeout(r, waitMs));
    }
    await this.close();
    const why = causes.map((c) => (c instanceof Error ? c.message : String(c))).join('; ');
    throw new UnavailableError(`no endpoint answered within ${this.o.connectTimeoutMs} ms: ${why}`, { cause: causes[0] });
  }

  private onHello(node: NodeConnection, hello: HelloResult): void {
    this.limits = hello.limits;
    if (!hello.leader) return;
    const leader = hello.leader.id === hello.serverId ? node : this.nodeForHint(hello.leader);
    if (leader) this.leader = leader;
  }

  /** The node for a leader hint: known by id, else by address, else added (up to maxKnownNodes). */
  private nodeForHint(hint: LeaderHint): NodeConnection | undefined {
    const byId = this.nodes.find((n) => n.serverId === hint.id);
    if (byId) return byId;
    // A seed endpoint that has not said hello yet may be this very node: wait for its hello
    // rather than adding a second entry for it under an address we may not be able to reach.
    if (this.nodes.some((n) => n.firstHelloPending)) return undefined;
    const address = this.o.mapAddress ? this.o.mapAddress(hint.address, hint.id) : hint.address;
    if (address === undefined) return undefined;
    const known = this.nodes.find((n) => n.address === address);
    if (known) return known;
    if (this.nodes.length >= this.o.maxKnownNodes) return undefined;
    let parsed;
    try {
      parsed = parseEndpoint(address, this.scheme);
    } catch {
      return undefined; // a hint we cannot use is as good as none
    }
    const node = this.newNode(parsed.address, parsed.url);
    this.nodes.push(node);
    return node;
  }

  /** The address of the node the client currently believes is the leader, if any. */
  get leaderAddress(): string | undefined {
    return this.leader?.address;
  }

  /** This client's exactly-once session id. */
  get sessionId(): string {
    return this.session.id;
  }

  /**
   * Writes `value` under `key`. Retried safely within the deadline: a retry of a write that was
   * applied returns the original revision instead of writing again.
   *
   * @example `const { revision } = await kv.put('user/1', 'ada');`
   */
  put(key: BytesLike, value: BytesLike, options?: WriteOptions): Promise<WriteResult> {
    // Not `async`: returning the call's promise itself spares a promise and the thenable job an
    // async function's `return promise` costs. Bad arguments still reject rather than throw.
    try {
      const k = this.key(key);
      const v = checkValue(bytesOf(value, 'value'), this.limits);
      // Exactly these fields in this order: node-connection's put fast path encodes them directly.
      return this.write('put', (session) => ({ op: 'put', key: k, value: v, session }), options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads `key`; `undefined` when it does not exist. Linearizable by default; with
   * `{ consistency: 'stale' }` any node answers from its local state, which may be behind.
   *
   * @example `const item = await kv.get('user/1'); item?.text()`
   */
  get(key: BytesLike, options?: GetOptions & { as?: 'bytes' }): Promise<KvItem | undefined>;
  get(key: BytesLike, options: GetOptions & { as: 'string' }): Promise<KvTextItem | undefined>;
  async get(key: BytesLike, options?: GetOptions): Promise<KvItem | KvTextItem | undefined> {
    const k = this.key(key);
    const consistency = checkConsistency(options?.consistency);
    const as = checkFormat(options?.as);
    const route: Route = consistency === 'stale' ? 'any' : 'leader';
    const at = checkRevision(options?.revision);
    const r = await this.execute('get', () => ({ op: 'get', key: k, consistency, ...at }), route, options);
    return r.item ? toItem(r.item, as) : undefined;
  }

  /**
   * Deletes `key`; `deleted` says whether it existed. Exactly-once like `put`. With a range
   * (`{ prefix }` or `{ start, end }`) it is {@link deleteRange}.
   *
   * @example
   * ```ts
   * await kv.delete('user/1');
   * const { deleted, revision } = await kv.delete({ prefix: 'session/' });
   * ```
   */
  delete(key: BytesLike, options?: WriteOptions): Promise<DeleteResponse>;
  delete(range: KeyRangeSpec, options?: WriteOptions): Promise<DeleteRangeResponse>;
  delete(target: BytesLike | KeyRangeSpec, options?: WriteOptions): Promise<DeleteResponse | DeleteRangeResponse> {
    if (typeof target === 'object' && !(target instanceof Uint8Array)) return this.deleteKeys(target, options);
    try {
      const k = this.key(target);
      return this.write('delete', (session) => ({ op: 'delete', key: k, session }), options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Deletes every key in [`start`, `end`) (no `end`: to the last key) as one write at one revision.
   * At most TXN_DELETED_KEYS_MAX (10,000) keys: beyond it nothing is deleted and the call rejects
   * with `QKV_LIMIT_EXCEEDED`. Exactly-once like `put`.
   *
   * @example `await kv.deleteRange('job/2024-', 'job/2025-')`
   */
  deleteRange(start: BytesLike, end?: BytesLike, options?: WriteOptions): Promise<DeleteRangeResponse> {
    return this.deleteKeys(end === undefined ? { start } : { start, end }, options);
  }

  private async deleteKeys(range: KeyRangeSpec, options: WriteOptions | undefined): Promise<DeleteRangeResponse> {
    const op = { op: 'deleteRange' as const, ...rangeBounds(range, this.limits, 'range') };
    const r = await this.write('txn', (session) => ({ op: 'txn', compare: [], success: [op], failure: [], session }), options);
    const first = r.results[0];
    return { deleted: first?.op === 'deleteRange' ? first.deleted : 0, revision: r.revision };
  }

  /**
   * A transaction (after etcd's Txn): if every compare holds, the `success` operations run, else
   * the `failure` ones — all as one write at one revision, exactly once like `put`. Reads inside
   * see the transaction's own earlier writes; a branch may change a key only once.
   *
   * @example
   * ```ts
   * // Move 10 from a to b unless a changed since we read it.
   * const r = await kv.txn({
   *   compare: [{ key: 'acct/a', target: 'modRevision', op: '==', value: a.modRevision }],
   *   success: [{ op: 'put', key: 'acct/a', value: '90' }, { op: 'put', key: 'acct/b', value: '110' }],
   *   failure: [{ op: 'get', key: 'acct/a' }],
   * });
   * if (!r.succeeded) console.log('a is now', r.results[0]);
   * ```
   */
  txn(spec: TxnSpec, options?: TxnOptions & { as?: 'bytes' }): Promise<TxnResponse<KvItem>>;
  txn(spec: TxnSpec, options: TxnOptions & { as: 'string' }): Promise<TxnResponse<KvTextItem>>;
  async txn(spec: TxnSpec, options?: TxnOptions): Promise<TxnResponse<KvItem | KvTextItem>> {
    const body = wireTxn(spec, this.limits);
    const as = checkFormat(options?.as);
    const r = await this.write('txn', (session) => ({ op: 'txn', ...body, session }), options);
    return txnResponse(r, as);
  }

  /**
   * Compare-and-swap: writes (or deletes) only if the condition holds, else rejects with
   * `CasFailedError` (`QKV_CAS_FAILED`, with `actualModRevision`). Exactly-once like `put`: a
   * retry after a lost answer gets the original outcome, success or failure.
   *
   * @example
   * ```ts
   * await kv.cas('user/1', { ifModRevision: 7, value: 'grace' });
   * await kv.cas('lock', { ifAbsent: true, value: 'me' });
   * await kv.cas('lock', { ifValue: 'me', delete: true });
   * ```
   */
  cas(key: BytesLike, spec: CasSpec, options?: WriteOptions): Promise<WriteResult> {
    try {
      const k = this.key(key);
      const condition = this.casCondition(spec);
      const action = this.casAction(spec);
      return this.write('cas', (session) => ({ op: 'cas', key: k, condition, action, session }), options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Iterates keys in byte order: by `prefix`, or from `start` up to `end` (exclusive). Fetches
   * pages of `pageSize` lazily as the loop consumes them; stop the loop to stop fetching. Each
   * page is its own read with its own deadline (`timeoutMs`), so the pages are not one snapshot.
   *
   * @example `for await (const e of kv.range({ prefix: 'user/', limit: 100 })) console.log(e.keyText());`
   */
  range(options: RangeOptions & { as?: 'bytes' }): AsyncIterableIterator<KvItem>;
  range(options: RangeOptions & { as: 'string' }): AsyncIterableIterator<KvTextItem>;
  range(options: RangeOptions): AsyncIterableIterator<KvItem | KvTextItem> {
    const plan = this.rangePlan(options);
    return this.rangePages(plan, options);
  }

  /**
   * Compacts history at `revision` through the log: every node drops the versions no read at
   * `revision` or later needs, and reads below it fail `QKV_COMPACTED` from then on. Idempotent
   * (compacting at or below the compacted revision changes nothing), so it is retried freely;
   * above the current revision: `QKV_INVALID_ARGUMENT`.
   *
   * @example `const { revision } = await kv.put('k', 'v'); await kv.compact(revision);`
   */
  compact(revision: number, options?: CallOptions): Promise<CompactResult> {
    const at = checkRevision(revision);
    if (at.revision === undefined) return Promise.reject(new InvalidArgumentError('compact needs a revision'));
    return this.execute('compact', () => ({ op: 'compact', revision: at.revision as number }), 'leader', options);
  }

  /**
   * Watches a key or every key under a prefix: an async iterator of changes in revision order,
   * from `startRevision` (or from now on), served by any node. It survives node deaths, leader
   * changes, partitions and reconnects with no gap, duplicate or reordering (it resumes after the
   * revision it delivered through); it ends with `CompactedError` (`QKV_COMPACTED`) if that point
   * was compacted away, and when `close()` is called or the loop breaks.
   *
   * @example
   * ```ts
   * const w = kv.watch({ prefix: 'config/', startRevision: 1 });
   * for await (const ev of w) if (ev.type === 'put') reload(ev.key, ev.value);
   * ```
   */
  watch(options: WatchOptions): Watch {
    const o = options ?? ({} as WatchOptions);
    if ((o.key === undefined) === (o.prefix === undefined)) throw new InvalidArgumentError('watch needs exactly one of key and prefix');
    let filter: { key: Uint8Array } | { prefix: Uint8Array };
    if (o.key !== undefined) filter = { key: this.key(o.key) };
    else {
      const prefix = bytesOf(o.prefix as BytesLike, 'prefix');
      if (prefix.length > this.limits.maxKeyBytes) throw new InvalidArgumentError('prefix is longer than a key may be');
      filter = { prefix };
    }
    if (o.startRevision !== undefined && (!Number.isSafeInteger(o.startRevision) || o.startRevision < 1)) {
      throw new InvalidArgumentError('startRevision must be a positive integer');
    }
    const batch = o.batchEvents ?? WATCH_EVENTS_MAX;
    if (!Number.isSafeInteger(batch) || batch < 1 || batch > WATCH_EVENTS_MAX) throw new InvalidArgumentError(`batchEvents must be an integer in [1, ${WATCH_EVENTS_MAX}]`);
    let address = ''; // the node of the last stream opened or tried (for onRetry)
    return new Watch(filter, o, {
      progressMs: Math.max(1, this.o.watchProgressMs),
      silenceMarginMs: this.o.attemptTimeoutMs,
      open: (body, sink, signal) => this.openWatchStream(body, sink, signal, (a) => (address = a)),
      retryDelayMs: (failures, error) => {
        const delayMs = this.retryDelay(failures);
        this.o.onRetry?.({ op: 'watch', address, error, attempt: failures, delayMs });
        return delayMs;
      },
    });
  }

  /** Opens a watch stream on the next node (any node serves watches): see Watch. */
  private async openWatchStream(body: WatchStreamBody, sink: WatchStreamSink, signal: AbortSignal, picked: (address: string) => void): Promise<WatchStreamHandle> {
    if (this.closed) throw new ClosedError('the client is closed');
    const node = this.pick('any');
    if (typeof node === 'number') throw new UnavailableError(`every node is in reconnect back-off (the first leaves it in ${node} ms)`);
    picked(node.address);
    const callSignal = new CallSignal();
    const onAbort = (): void => callSignal.abort(new AbortedError('the watch was closed'));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await node.open({ deadlineMs: Date.now() + this.o.attemptTimeoutMs, signal: callSignal });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return node.openWatch(body, sink);
  }

  /** The cluster as a node sees it (the leader when known): members, leader, term, warnings. */
  status(options?: CallOptions): Promise<ClusterStatus> {
    return this.execute('status', () => ({ op: 'status' }), 'preferLeader', options);
  }

  /**
   * Closes every connection. Calls in progress reject with `ClosedError` (`QKV_CLOSED`); a write
   * among them may or may not have been applied. Later calls reject with `QKV_CLOSED` too.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new ClosedError('the client was closed');
    for (const c of this.calls) c.abort(err);
    this.calls.clear();
    for (const n of this.nodes) n.close(err);
  }

  // --- argument checks -------------------------------------------------------------------------

  private key(key: BytesLike): Uint8Array {
    return checkKey(bytesOf(key, 'key'), this.limits);
  }

  private casCondition(spec: CasSpec): CasCondition {
    const s = spec as Partial<{ ifModRevision: number; ifValue: BytesLike; ifAbsent: true }>;
    const given = [s.ifModRevision !== undefined, s.ifValue !== undefined, s.ifAbsent !== undefined].filter(Boolean);
    if (given.length !== 1) throw new InvalidArgumentError('cas needs exactly one of ifModRevision, ifValue, ifAbsent');
    if (s.ifModRevision !== undefined) {
      if (!Number.isSafeInteger(s.ifModRevision) || s.ifModRevision < 0) {
        throw new InvalidArgumentError('ifModRevision must be a non-negative integer');
      }
      return { kind: 'modRevision', modRevision: s.ifModRevision };
    }
    if (s.ifValue !== undefined) return { kind: 'value', value: checkValue(bytesOf(s.ifValue, 'ifValue'), this.limits, 'ifValue') };
    if (s.ifAbsent !== true) throw new InvalidArgumentError('ifAbsent must be true');
    return { kind: 'absent' };
  }

  private casAction(spec: CasSpec): CasAction {
    const s = spec as Partial<{ value: BytesLike; delete: true }>;
    if ((s.value !== undefined) === (s.delete !== undefined)) {
      throw new InvalidArgumentError('cas needs exactly one of value and delete');
    }
    if (s.value !== undefined) return { kind: 'put', value: checkValue(bytesOf(s.value, 'value'), this.limits) };
    if (s.delete !== true) throw new InvalidArgumentError('delete must be true');
    return { kind: 'delete' };
  }

  private rangePlan(o: RangeOptions): RangePlan {
    if (!o || typeof o !== 'object') throw new InvalidArgumentError('range needs options with prefix or start');
    if ((o.prefix === undefined) === (o.start === undefined)) throw new InvalidArgumentError('range needs exactly one of prefix and start');
    if (o.prefix !== undefined && o.end !== undefined) throw new InvalidArgumentError('range takes end only with start');
    const limit = o.limit ?? Number.POSITIVE_INFINITY;
    if (limit !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(limit) || limit < 1)) {
      throw new InvalidArgumentError('limit must be a positive integer');
    }
    const pageSize = o.pageSize ?? this.o.rangePageSize;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > RANGE_LIMIT_MAX) {
      throw new InvalidArgumentError(`pageSize must be an integer in [1, ${RANGE_LIMIT_MAX}]`);
    }
    const bound = (b: BytesLike, what: string): Uint8Array => {
      const bytes = bytesOf(b, what);
      if (bytes.length > this.limits.maxKeyBytes) throw new InvalidArgumentError(`${what} is longer than a key may be`);
      return bytes;
    };
    const plan: RangePlan = {
      limit,
      pageSize,
      consistency: checkConsistency(o.consistency),
      as: checkFormat(o.as),
      ...checkRevision(o.revision),
    };
    if (o.prefix !== undefined) plan.prefix = bound(o.prefix, 'prefix');
    if (o.start !== undefined) plan.start = bound(o.start, 'start');
    if (o.end !== undefined) plan.end = this.key(o.end);
    return plan;
  }

  private async *rangePages(plan: RangePlan, call: CallOptions): AsyncIterableIterator<KvItem | KvTextItem> {
    let after: Uint8Array | undefined;
    let left = plan.limit;
    let revision = plan.revision;
    const route: Route = plan.consistency === 'stale' ? 'any' : 'leader';
    while (left > 0) {
      const body: Omit<RangeRequest, 'id'> = { op: 'range', limit: Math.min(plan.pageSize, left), consistency: plan.consistency };
      if (revision !== undefined) body.revision = revision;
      if (plan.prefix) body.prefix = plan.prefix;
      if (plan.start) body.start = plan.start;
      if (plan.end) body.end = plan.end;
      if (after) body.after = after;
      const page = await this.execute('range', () => body, route, call);
      for (const it of page.items) {
        yield toItem(it, plan.as);
        left--;
      }
      const last = page.items[page.items.length - 1];
      if (!page.more || !last) return;
      after = last.key;
      revision ??= page.revision; // later pages read at the first page's revision
    }
  }

  // --- the retry loop ----------------------------------------------------------------------------

  /** Runs a write with a session seq that stays the same across its retries. */
  private write<K extends 'put' | 'delete' | 'cas' | 'txn'>(
    op: K,
    build: (session: SessionRef) => RequestBody,
    options: WriteOptions | undefined,
  ): Promise<ResultByOp[K]> {
    return this.execute(op, build as (session: SessionRef | undefined) => RequestBody, 'leader', options, true);
  }

  /**
   * One call: deadline, abort, close, and retries over nodes until an answer or a final error.
   * A write (`isWrite`) claims a session seq first, which every attempt reuses. `build` makes the
   * request body of one attempt (a write's gets its session reference, fresh each attempt).
   *
   * A write attempt that may have reached a node without a known outcome (QKV_INDETERMINATE from
   * the node, or sent and then cut off) makes the call `uncertain`: retrying it is still safe
   * (the session applies the seq at most once and a retry returns the first outcome), but if the
   * call ends without an answer, its error is QKV_INDETERMINATE, never a "not applied" code.
   *
   * The retry loop is inline (not an async function of its own), and its bookkeeping is made
   * only when an attempt fails: the success path of a call allocates as little as it can.
   */
  private async execute<K extends DataOp>(
    op: K,
    build: (session: SessionRef | undefined) => RequestBody,
    route: Route,
    call: CallOptions | undefined,
    isWrite = false,
    attemptTimeoutMs = this.o.attemptTimeoutMs,
  ): Promise<ResultByOp[K]> {
    const session = isWrite ? this.session : undefined;
    const ticket = session?.begin();
    let uncertain = false;
    try {
      if (this.closed) throw new ClosedError('the client is closed');
      if (this.calls.size >= this.o.maxPendingCalls) {
        throw new BusyError(1, `more than maxPendingCalls (${this.o.maxPendingCalls}) calls in progress`);
      }
      const deadlineMs = Date.now() + callTimeoutMs(call, this.o.timeoutMs);
      const user = call?.signal;
      if (user?.aborted) throw new AbortedError('the operation was aborted', { cause: user.reason });
      const signal = new CallSignal();
      let onUserAbort: (() => void) | undefined;
      if (user) {
        onUserAbort = (): void => signal.abort(new AbortedError('the operation was aborted', { cause: user.reason }));
        user.addEventListener('abort', onUserAbort, { once: true });
      }
      this.calls.add(signal);
      try {
        let st: RetryState | undefined;
        for (let attempt = 1; attempt <= this.o.maxAttemptsPerCall; attempt++) {
          if (Date.now() >= deadlineMs) throw deadlineError(op, st?.lastError);
          const picked = this.pick(route);
          if (typeof picked === 'number') {
            await this.pause(picked, deadlineMs, signal, op, st);
            continue;
          }
          try {
            const attemptDeadlineMs = Math.min(deadlineMs, Date.now() + attemptTimeoutMs);
            return await picked.request(op, build(ticket?.ref()), attemptDeadlineMs, signal);
          } catch (e) {
            st ??= { redirects: 0, noLeader: 0, unavailable: 0, lastError: undefined };
            if (e instanceof IndeterminateError) uncertain = true;
            const delayMs = this.attemptFailed(e, picked, op, attempt, deadlineMs, signal, st);
            await this.pause(delayMs, deadlineMs, signal, op, st);
          }
        }
        throw new UnavailableError(`gave up after ${this.o.maxAttemptsPerCall} attempts`, { cause: st?.lastError });
      } finally {
        this.calls.delete(signal);
        if (onUserAbort) user?.removeEventListener('abort', onUserAbort);
      }
    } catch (e) {
      if (e instanceof SessionExpiredError && session !== undefined && this.session === session) {
        this.session = new ClientSession(randomSessionId());
      }
      throw uncertain ? indeterminateOutcome(op, e) : e;
    } finally {
      ticket?.done();
    }
  }

  /**
   * Judges a failed attempt: throws the error that ends the call, or returns the delay before
   * the next attempt (after telling `onRetry`).
   */
  private attemptFailed(
    e: unknown,
    node: NodeConnection,
    op: DataOp,
    attempt: number,
    deadlineMs: number,
    signal: CallSignal,
    st: RetryState,
  ): number {
    if (signal.aborted) throw abortReason(signal);
    const err = asQkv(e);
    // An attempt cut short by the call's own deadline says nothing new: the cause of the
    // deadline error stays the last informative error (e.g. QKV_NO_LEADER), if there was one.
    const cutByDeadline = err instanceof TimeoutError && Date.now() >= deadlineMs;
    if (!(cutByDeadline && st.lastError !== undefined)) st.lastError = err;
    if (cutByDeadline) throw deadlineError(op, st.lastError);
    const delayMs = this.afterFailure(err, node, st);
    if (delayMs === undefined) throw err;
    this.o.onRetry?.({ op, address: node.address, error: err, attempt, delayMs });
    return delayMs;
  }

  /**
   * What to do after a failed attempt: the delay before the next one, or undefined to give up
   * with the error. Updates the leader guess on the way.
   */
  private afterFailure(err: QuorumKvError, node: NodeConnection, st: RetryState): number | undefined {
    if (err instanceof NotLeaderError) {
      st.redirects++;
      const target = err.leaderHint ? this.nodeForHint(err.leaderHint) : undefined;
      if (target && target !== node) {
        this.leader = target;
        // A live node vouches for the target: do not let an old back-off keep us away from it.
        target.shortenBackoff(HINTED_NODE_WAIT_MS_MAX);
        // A hint is fresh news: follow it at once. Only a run of more redirects than there are
        // nodes (stale hints going round in a circle, e.g. to a dead leader) earns a back-off.
        return st.redirects <= this.nodes.length ? 0 : this.retryDelay(st.redirects - this.nodes.length);
      }
      if (this.leader === node) this.leader = undefined;
      return this.retryDelay(st.redirects);
    }
    if (err instanceof NoLeaderError) {
      if (this.leader === node) this.leader = undefined;
      return this.retryDelay(++st.noLeader);
    }
    if (err instanceof BusyError) return Math.max(1, Math.round(err.retryAfterMs * (1 + 0.2 * this.o.random())));
    if (
      err instanceof UnavailableError ||
      err instanceof DiskFullError ||
      err instanceof StorageUnavailableError ||
      err instanceof TimeoutError ||
      err instanceof IndeterminateError ||
      err instanceof ProtocolError ||
      err instanceof ClosedError
    ) {
      // The node is down, restarting, unresponsive or shutting down: try another one (a write
      // whose attempt was indeterminate too: its retry keeps the session seq, so it applies at
      // most once and returns the first attempt's outcome if that one landed). The node's
      // own reconnect back-off keeps us from hammering it; this delay only stops a tight loop
      // when every node fails fast.
      if (this.leader === node) this.leader = undefined;
      st.unavailable++;
      return st.unavailable <= this.nodes.length ? 0 : this.retryDelay(st.unavailable - this.nodes.length);
    }
    return undefined;
  }

  private retryDelay(n: number): number {
    return backoffDelayMs(n, this.o.retryBackoff, this.o.random);
  }

  /** Sleeps `ms` unless that passes the deadline (then fails with a timeout now) or the call aborts. */
  private pause(ms: number, deadlineMs: number, signal: CallSignal, op: DataOp, st: RetryState | undefined): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    const leftMs = deadlineMs - Date.now();
    if (leftMs <= 0) return Promise.reject(deadlineError(op, st?.lastError));
    if (signal.aborted) return Promise.reject(abortReason(signal));
    // A back-off longer than the time left must not end the call early: sleep what is left, less
    // a moment for one last attempt (the attempt itself is bounded by the deadline).
    if (ms >= leftMs) ms = Math.max(0, leftMs - Math.min(LAST_ATTEMPT_MS, leftMs / 2));
    return new Promise<void>((resolve, reject) => {
      const listener: AbortListener = {
        onCallAbort: () => {
          clearTimeout(timer);
          reject(abortReason(signal));
        },
      };
      signal.subscribe(listener);
      const timer = setTimeout(() => {
        signal.unsubscribe(listener);
        resolve();
      }, ms);
    });
  }

  /**
   * The node for the next attempt. Writes and linearizable reads go to the leader when it is
   * known and reachable, otherwise round-robin (any node answers with a hint); stale reads go
   * round-robin over every node that is not in reconnect back-off. When all are, returns how
   * long to wait (in ms) for the first to come out of it. (A node or a number, not an object
   * holding either: nothing is allocated per call.)
   */
  private pick(route: Route): NodeConnection | number {
    const now = Date.now();
    if (route !== 'any' && this.leader) {
      const waitMs = this.leader.retryAt - now;
      if (waitMs <= 0) return this.leader;
      // About to be retried anyway: wait for it rather than bounce off a follower's hint.
      if (waitMs <= HINTED_NODE_WAIT_MS_MAX) return waitMs;
    }
    let soonest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.nodes.length; i++) {
      const node = this.nodes[(this.roundRobin + i) % this.nodes.length] as NodeConnection;
      if (node.retryAt <= now) {
        this.roundRobin = (this.roundRobin + i + 1) % this.nodes.length;
        return node;
      }
      soonest = Math.min(soonest, node.retryAt);
    }
    return Math.max(1, soonest - now);
  }
}

interface RangePlan {
  prefix?: Uint8Array;
  start?: Uint8Array;
  end?: Uint8Array;
  limit: number;
  pageSize: number;
  consistency: Consistency;
  as: ValueFormat;
  revision?: number;
}

/**
 * The call's deadline passed. For a write this says "not applied": it is thrown only when no
 * attempt may have reached a node undecided (else execute() turns it into QKV_INDETERMINATE).
 */
function deadlineError(op: DataOp, cause: QuorumKvError | undefined): TimeoutError {
  const write = op === 'put' || op === 'delete' || op === 'cas';
  const msg = write ? `${op}: deadline exceeded; no attempt reached the cluster undecided, the write was not applied` : `${op}: deadline exceeded`;
  return new TimeoutError(cause ? `${msg} (last error: ${cause.code})` : msg, cause ? { cause } : undefined);
}

/**
 * The final error of a write call one of whose attempts may have been applied: QKV_INDETERMINATE
 * (cause: the error that ended the call), unless that error is itself an outcome the state
 * machine decided (a failed CAS, returned by the session for the first attempt) or already says
 * indeterminate.
 */
function indeterminateOutcome(op: DataOp, e: unknown): unknown {
  if (e instanceof IndeterminateError || writeOutcomeOf(e) === 'applied') return e;
  const code = e instanceof QuorumKvError ? e.code : 'an untyped error';
  return new IndeterminateError(`${op}: an attempt may have been applied before the call ended (${code}); the outcome is unknown`, { cause: e });
}

/** A read revision option: absent, or a non-negative integer. */
function checkRevision(revision: number | undefined): { revision?: number } {
  if (revision === undefined) return {};
  if (!Number.isSafeInteger(revision) || revision < 0) throw new InvalidArgumentError('revision must be a non-negative integer');
  return { revision };
}

function checkConsistency(c: Consistency | undefined): Consistency {
  if (c === undefined) return 'linearizable';
  if (c !== 'linearizable' && c !== 'stale') throw new InvalidArgumentError("consistency must be 'linearizable' or 'stale'");
  return c;
}

function checkFormat(f: ValueFormat | undefined): ValueFormat {
  if (f === undefined) return 'bytes';
  if (f !== 'bytes' && f !== 'string') throw new InvalidArgumentError("as must be 'bytes' or 'string'");
  return f;
}

function parseEndpointOrThrow(e: string, scheme: 'ws' | 'wss'): { address: string; url: string } {
  if (typeof e !== 'string') throw new InvalidArgumentError('every endpoint must be a string');
  try {
    return parseEndpoint(e, scheme);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * Connects to a quorumkv cluster. Resolves once one endpoint has answered (the others connect in
 * the background); rejects with `UnavailableError` when none answers within `connectTimeoutMs`.
 *
 * @example
 * ```ts
 * const kv = await connect({ endpoints: ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'] });
 * await kv.put('user/1', 'ada');
 * console.log((await kv.get('user/1'))?.text());
 * await kv.close();
 * ```
 */
export async function connect(options: ConnectOptions): Promise<KvClient> {
  const o = resolveOptions(options);
  const factory = o.webSocketFactory ?? (await defaultWebSocketFactory(o.tls));
  const client = new KvClient(o, factory);
  await client.start();
  return client;
}
