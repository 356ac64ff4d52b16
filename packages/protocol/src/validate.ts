// Strict validation of decoded frames. Everything that arrives from the network is `unknown`
// until a function here has checked every field: type, range, size, and that no unknown field
// is present. Failures are typed errors (never a crash, never a partially trusted object).

import {
  InvalidArgumentError,
  ProtocolError,
  QuorumKvError,
  TooLargeError,
  type LeaderHint,
} from './errors.js';
import {
  RANGE_LIMIT_MAX,
  REQUEST_TIMEOUT_MS_MAX,
  SESSION_ID_CHARS_MAX,
  WATCH_EVENTS_MAX,
  WATCH_REVISION_EVENTS_SLACK,
  WATCH_WAIT_MS_MAX,
  WATCH_WINDOW_MAX,
  WATCH_ACKS_MAX,
  type CasAction,
  type CasCondition,
  type ClientRequest,
  type ClientResponse,
  type ClusterStatus,
  type Consistency,
  type Limits,
  type MemberStatus,
  type Op,
  type ResultByOp,
  type SessionRef,
  type TxnCompare,
  type TxnOp,
  type TxnOpResult,
  type TxnRequest,
  type TxnResult,
  TXN_COMPARES_MAX,
  TXN_OPS_MAX,
  TXN_RANGE_LIMIT_MAX,
  type WireError,
  type WireItem,
  type WireWatchEvent,
} from './wire.js';

type Obj = Record<string, unknown>;

/** Most items a status answer may list (members, warnings). */
const STATUS_LIST_MAX = 1000;
/** Longest string accepted in ids, addresses, messages. */
const STRING_CHARS_MAX = 64 * 1024;

function isObj(x: unknown): x is Obj {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || x instanceof Uint8Array) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function obj(x: unknown, path: string): Obj {
  if (!isObj(x)) throw new ProtocolError(`${path} must be a map`);
  return x;
}

// Field lists of each shape: module constants, so onlyKeys can key its sets by identity.
const SESSION_FIELDS = ['id', 'seq', 'ackedBelow'];
const COND_MOD_REVISION_FIELDS = ['kind', 'modRevision'];
const KIND_VALUE_FIELDS = ['kind', 'value'];
const KIND_FIELDS = ['kind'];
const LEADER_HINT_FIELDS = ['id', 'address'];
const ERROR_FIELDS = ['code', 'message', 'leaderHint', 'retryAfterMs', 'actualModRevision', 'limitBytes', 'compactedRevision'];
const OK_RESPONSE_FIELDS = ['id', 'ok', 'result'];
const ERROR_RESPONSE_FIELDS = ['id', 'ok', 'error'];
const ITEM_FIELDS = ['key', 'value', 'createRevision', 'modRevision', 'version'];
const LIMITS_FIELDS = ['maxKeyBytes', 'maxValueBytes', 'maxFrameBytes'];
const MEMBER_FIELDS = ['id', 'address', 'zone', 'kind'];
const STATUS_FIELDS = ['nodeId', 'role', 'term', 'leader', 'commitIndex', 'appliedIndex', 'members', 'warnings'];
const HELLO_RESULT_FIELDS = ['version', 'serverId', 'leader', 'limits'];
const GET_RESULT_FIELDS = ['item'];
const WRITE_RESULT_FIELDS = ['revision', 'term'];
const DELETE_RESULT_FIELDS = ['revision', 'deleted', 'term'];
const RANGE_RESULT_FIELDS = ['items', 'more', 'revision'];

/** Field lists turned into sets once, by identity (requests are validated on every frame). */
const fieldSets = new WeakMap<readonly string[], ReadonlySet<string>>();

function onlyKeys(o: Obj, allowed: readonly string[], path: string): void {
  let set = fieldSets.get(allowed);
  if (set === undefined) fieldSets.set(allowed, (set = new Set(allowed)));
  for (const k in o) {
    if (!set.has(k)) throw new ProtocolError(`${path} has an unknown field "${k}"`);
  }
}

/** msgpack nil and a missing field both mean "absent". */
function absent(x: unknown): x is null | undefined {
  return x === undefined || x === null;
}

function int(x: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x)) throw new ProtocolError(`${path} must be an integer`);
  if (x < min || x > max) throw new InvalidArgumentError(`${path} must be in [${min}, ${max}], got ${x}`);
  return x;
}

function str(x: unknown, path: string, minChars = 0, maxChars = STRING_CHARS_MAX): string {
  if (typeof x !== 'string') throw new ProtocolError(`${path} must be a string`);
  if (x.length < minChars || x.length > maxChars) {
    throw new InvalidArgumentError(`${path} must have ${minChars}..${maxChars} characters`);
  }
  return x;
}

function bool(x: unknown, path: string): boolean {
  if (typeof x !== 'boolean') throw new ProtocolError(`${path} must be a boolean`);
  return x;
}

function bytes(x: unknown, path: string): Uint8Array {
  if (!(x instanceof Uint8Array)) throw new ProtocolError(`${path} must be binary`);
  return x;
}

function list(x: unknown, path: string, maxItems: number): unknown[] {
  if (!Array.isArray(x)) throw new ProtocolError(`${path} must be an array`);
  if (x.length > maxItems) throw new ProtocolError(`${path} has more than ${maxItems} items`);
  return x;
}

function oneOf<T extends string>(x: unknown, allowed: readonly T[], path: string): T {
  if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x)) {
    throw new ProtocolError(`${path} must be one of ${allowed.join(', ')}`);
  }
  return x as T;
}

/** Checks a key: binary, non-empty, at most `maxKeyBytes`. */
export function checkKey(x: unknown, limits: Limits, path = 'key'): Uint8Array {
  const b = bytes(x, path);
  if (b.length === 0) throw new InvalidArgumentError(`${path} must not be empty`);
  if (b.length > limits.maxKeyBytes) {
    throw new TooLargeError(`${path} has ${b.length} bytes; the limit is ${limits.maxKeyBytes}`, limits.maxKeyBytes);
  }
  return b;
}

/** Checks a value: binary, at most `maxValueBytes` (empty is allowed). */
export function checkValue(x: unknown, limits: Limits, path = 'value'): Uint8Array {
  const b = bytes(x, path);
  if (b.length > limits.maxValueBytes) {
    throw new TooLargeError(`${path} has ${b.length} bytes; the limit is ${limits.maxValueBytes}`, limits.maxValueBytes);
  }
  return b;
}

/**
 * Checks a set of limits: positive integers, and frames big enough for the largest key + value.
 * Throws {@link InvalidArgumentError} naming the rule.
 */
export function validateLimits(limits: Limits): Limits {
  for (const name of ['maxKeyBytes', 'maxValueBytes', 'maxFrameBytes'] as const) {
    const v = limits[name];
    if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(`limits.${name} must be a positive integer`);
  }
  const need = limits.maxKeyBytes + limits.maxValueBytes + 1024;
  if (limits.maxFrameBytes < need) {
    throw new InvalidArgumentError(`limits.maxFrameBytes must be at least maxKeyBytes + maxValueBytes + 1024 (${need})`);
  }
  return limits;
}

function session(x: unknown): SessionRef {
  const o = obj(x, 'session');
  onlyKeys(o, SESSION_FIELDS, 'session');
  const seq = int(o.seq, 'session.seq', 1);
  return {
    id: str(o.id, 'session.id', 1, SESSION_ID_CHARS_MAX),
    seq,
    ackedBelow: int(o.ackedBelow, 'session.ackedBelow', 1, seq),
  };
}

/** An optional read revision: a non-negative integer (0 reads the empty store before any write). */
function revision(x: unknown): { revision?: number } {
  return absent(x) ? {} : { revision: int(x, 'revision', 0) };
}

function consistency(x: unknown): Consistency {
  return absent(x) ? 'linearizable' : oneOf(x, ['linearizable', 'stale'] as const, 'consistency');
}

function casCondition(x: unknown, limits: Limits): CasCondition {
  const o = obj(x, 'condition');
  const kind = oneOf(o.kind, ['modRevision', 'value', 'absent'] as const, 'condition.kind');
  switch (kind) {
    case 'modRevision':
      onlyKeys(o, COND_MOD_REVISION_FIELDS, 'condition');
      return { kind, modRevision: int(o.modRevision, 'condition.modRevision', 0) };
    case 'value':
      onlyKeys(o, KIND_VALUE_FIELDS, 'condition');
      return { kind, value: checkValue(o.value, limits, 'condition.value') };
    case 'absent':
      onlyKeys(o, KIND_FIELDS, 'condition');
      return { kind };
  }
}

function casAction(x: unknown, limits: Limits): CasAction {
  const o = obj(x, 'action');
  const kind = oneOf(o.kind, ['put', 'delete'] as const, 'action.kind');
  if (kind === 'put') {
    onlyKeys(o, KIND_VALUE_FIELDS, 'action');
    return { kind, value: checkValue(o.value, limits, 'action.value') };
  }
  onlyKeys(o, KIND_FIELDS, 'action');
  return { kind };
}

const OPS: readonly Op[] = ['hello', 'get', 'put', 'delete', 'cas', 'range', 'status', 'compact', 'watch', 'txn', 'watchAck', 'watchCancel'];
const WATCH_FIELDS = ['id', 'op', 'timeoutMs', 'key', 'prefix', 'afterRevision', 'limit', 'progressMs', 'window', 'prevValue'];
const WATCH_ACK_FIELDS = ['id', 'op', 'timeoutMs', 'watches'];
const WATCH_RESULT_FIELDS = ['events', 'revision', 'compactedRevision'];
const WATCH_EVENT_FIELDS = ['type', 'key', 'value', 'modRevision', 'createRevision', 'version', 'prevValue'];
const COMPACT_RESULT_FIELDS = ['compactedRevision', 'revision'];
const BASE = ['id', 'op', 'timeoutMs'];
const TXN_FIELDS = [...BASE, 'compare', 'success', 'failure', 'session'];
const COMPACT_FIELDS = [...BASE, 'revision'];
const HELLO_FIELDS = [...BASE, 'version'];
const GET_FIELDS = [...BASE, 'key', 'consistency', 'revision'];
const PUT_FIELDS = [...BASE, 'key', 'value', 'session'];
const DELETE_FIELDS = [...BASE, 'key', 'session'];
const CAS_FIELDS = [...BASE, 'key', 'condition', 'action', 'session'];
const RANGE_FIELDS = [...BASE, 'prefix', 'start', 'end', 'after', 'limit', 'consistency', 'revision'];

function requestBody(o: Obj, id: number, limits: Limits): ClientRequest {
  const op = oneOf(o.op, OPS, 'op');
  const t = absent(o.timeoutMs) ? undefined : int(o.timeoutMs, 'timeoutMs', 1, REQUEST_TIMEOUT_MS_MAX);
  const req = requestFields(o, op, id, limits);
  // Literals, then the optional field (an object spread costs ~0.5 µs per request on Node 20).
  if (t !== undefined) req.timeoutMs = t;
  return req;
}

function requestFields(o: Obj, op: Op, id: number, limits: Limits): ClientRequest {
  switch (op) {
    case 'hello':
      onlyKeys(o, HELLO_FIELDS, 'hello');
      return { id, op, version: int(o.version, 'version', 0) };
    case 'get':
      onlyKeys(o, GET_FIELDS, 'get');
      return { id, op, key: checkKey(o.key, limits), consistency: consistency(o.consistency), ...revision(o.revision) };
    case 'put':
      onlyKeys(o, PUT_FIELDS, 'put');
      return { id, op, key: checkKey(o.key, limits), value: checkValue(o.value, limits), session: session(o.session) };
    case 'delete':
      onlyKeys(o, DELETE_FIELDS, 'delete');
      return { id, op, key: checkKey(o.key, limits), session: session(o.session) };
    case 'cas':
      onlyKeys(o, CAS_FIELDS, 'cas');
      return {
        id,
        op,
        key: checkKey(o.key, limits),
        condition: casCondition(o.condition, limits),
        action: casAction(o.action, limits),
        session: session(o.session),
      };
    case 'range':
      return rangeBody(o, id, limits);
    case 'status':
      onlyKeys(o, BASE, 'status');
      return { id, op };
    case 'compact':
      onlyKeys(o, COMPACT_FIELDS, 'compact');
      return { id, op, revision: int(o.revision, 'revision', 0) };
    case 'txn':
      onlyKeys(o, TXN_FIELDS, 'txn');
      return { id, op, ...txnBody(o, limits), session: session(o.session) };
    case 'watch':
      return watchBody(o, id, limits);
    case 'watchAck':
      onlyKeys(o, WATCH_ACK_FIELDS, 'watchAck');
      return { id, op, watches: watchAcks(o.watches) };
    case 'watchCancel':
      onlyKeys(o, BASE, 'watchCancel');
      return { id, op };
  }
}

function watchBody(o: Obj, id: number, limits: Limits): ClientRequest {
  onlyKeys(o, WATCH_FIELDS, 'watch');
  if (absent(o.key) === absent(o.prefix)) throw new InvalidArgumentError('watch needs exactly one of key and prefix');
  const req: ClientRequest = {
    id,
    op: 'watch',
    limit: int(o.limit, 'limit', 1, WATCH_EVENTS_MAX),
    progressMs: int(o.progressMs, 'progressMs', 1, WATCH_WAIT_MS_MAX),
    window: int(o.window, 'window', 1, WATCH_WINDOW_MAX),
  };
  if (!absent(o.afterRevision)) req.afterRevision = int(o.afterRevision, 'afterRevision', 0);
  if (!absent(o.key)) req.key = checkKey(o.key, limits);
  else {
    // A prefix may be empty (= every key).
    req.prefix = bytes(o.prefix, 'prefix');
    if (req.prefix.length > limits.maxKeyBytes) throw new TooLargeError('prefix is longer than a key may be', limits.maxKeyBytes);
  }
  if (!absent(o.prevValue)) req.prevValue = bool(o.prevValue, 'prevValue');
  return req;
}

/** The watch ids of a watchAck: 1..WATCH_ACKS_MAX request ids. */
function watchAcks(x: unknown): number[] {
  const ids = list(x, 'watches', WATCH_ACKS_MAX);
  if (ids.length === 0) throw new InvalidArgumentError('watches must name at least one watch');
  return ids.map((v, i) => int(v, `watches[${i}]`, 0));
}

function watchEvent(x: unknown, limits: Limits, path: string): WireWatchEvent {
  const o = obj(x, path);
  onlyKeys(o, WATCH_EVENT_FIELDS, path);
  const ev: WireWatchEvent = {
    type: oneOf(o.type, ['put', 'delete'] as const, `${path}.type`),
    key: checkKey(o.key, limits, `${path}.key`),
    modRevision: int(o.modRevision, `${path}.modRevision`, 0),
    createRevision: int(o.createRevision, `${path}.createRevision`, 0),
    version: int(o.version, `${path}.version`, 0),
  };
  if (!absent(o.value)) ev.value = checkValue(o.value, limits, `${path}.value`);
  if (!absent(o.prevValue)) ev.prevValue = checkValue(o.prevValue, limits, `${path}.prevValue`);
  return ev;
}

const COMPARE_FIELDS = ['key', 'target', 'op', 'value'];
const TXN_PUT_FIELDS = ['op', 'key', 'value'];
const TXN_KEY_FIELDS = ['op', 'key'];
const TXN_RANGE_FIELDS = ['op', 'prefix', 'start', 'end', 'limit'];
const TXN_DELETE_RANGE_FIELDS = ['op', 'prefix', 'start', 'end'];
const TXN_RESULT_FIELDS = ['succeeded', 'revision', 'results', 'term'];

/**
 * Validates the compares and branches of a transaction (the WebSocket request and the HTTP JSON
 * body, once its strings are bytes, share it). Throws InvalidArgumentError / ProtocolError /
 * TooLargeError naming the field.
 */
export function txnBody(o: Obj, limits: Limits): Pick<TxnRequest, 'compare' | 'success' | 'failure'> {
  const compare = absent(o.compare) ? [] : list(o.compare, 'compare', TXN_COMPARES_MAX).map((c, i) => txnCompare(c, limits, `compare[${i}]`));
  const branch = (x: unknown, name: string): TxnOp[] => (absent(x) ? [] : list(x, name, TXN_OPS_MAX).map((op, i) => txnOp(op, limits, `${name}[${i}]`)));
  return { compare, success: branch(o.success, 'success'), failure: branch(o.failure, 'failure') };
}

function txnCompare(x: unknown, limits: Limits, path: string): TxnCompare {
  const o = obj(x, path);
  onlyKeys(o, COMPARE_FIELDS, path);
  const key = checkKey(o.key, limits, `${path}.key`);
  const target = oneOf(o.target, ['value', 'version', 'createRevision', 'modRevision'] as const, `${path}.target`);
  const op = oneOf(o.op, ['==', '!=', '<', '>'] as const, `${path}.op`);
  if (target === 'value') return { key, target, op, value: checkValue(o.value, limits, `${path}.value`) };
  return { key, target, op, value: int(o.value, `${path}.value`, 0) };
}

function txnOp(x: unknown, limits: Limits, path: string): TxnOp {
  const o = obj(x, path);
  const op = oneOf(o.op, ['put', 'get', 'range', 'delete', 'deleteRange'] as const, `${path}.op`);
  switch (op) {
    case 'put':
      onlyKeys(o, TXN_PUT_FIELDS, path);
      return { op, key: checkKey(o.key, limits, `${path}.key`), value: checkValue(o.value, limits, `${path}.value`) };
    case 'get':
    case 'delete':
      onlyKeys(o, TXN_KEY_FIELDS, path);
      return { op, key: checkKey(o.key, limits, `${path}.key`) };
    case 'range':
      onlyKeys(o, TXN_RANGE_FIELDS, path);
      return { op, ...txnRangeBounds(o, limits, path), limit: int(o.limit, `${path}.limit`, 1, TXN_RANGE_LIMIT_MAX) };
    case 'deleteRange':
      onlyKeys(o, TXN_DELETE_RANGE_FIELDS, path);
      return { op, ...txnRangeBounds(o, limits, path) };
  }
}

/** `prefix`, or `start` with an optional `end`: exactly one of prefix and start. */
function txnRangeBounds(o: Obj, limits: Limits, path: string): { prefix?: Uint8Array; start?: Uint8Array; end?: Uint8Array } {
  const hasPrefix = !absent(o.prefix);
  if (hasPrefix === !absent(o.start)) throw new InvalidArgumentError(`${path} needs exactly one of prefix and start`);
  if (hasPrefix && !absent(o.end)) throw new InvalidArgumentError(`${path} with a prefix takes no end`);
  const bound = (x: unknown, name: string) => {
    const b = bytes(x, `${path}.${name}`);
    if (b.length > limits.maxKeyBytes) throw new TooLargeError(`${path}.${name} is longer than a key may be`, limits.maxKeyBytes);
    return b;
  };
  if (hasPrefix) return { prefix: bound(o.prefix, 'prefix') };
  return { start: bound(o.start, 'start'), ...(absent(o.end) ? {} : { end: checkKey(o.end, limits, `${path}.end`) }) };
}

function txnResult(o: Obj, limits: Limits): TxnResult {
  onlyKeys(o, TXN_RESULT_FIELDS, 'txn result');
  const results = list(o.results, 'results', TXN_OPS_MAX).map((x, i): TxnOpResult => {
    const r = obj(x, `results[${i}]`);
    const path = `results[${i}]`;
    switch (oneOf(r.op, ['put', 'get', 'range', 'delete', 'deleteRange'] as const, `${path}.op`)) {
      case 'put':
        return { op: 'put' };
      case 'get':
        return { op: 'get', item: absent(r.item) ? null : item(r.item, limits, `${path}.item`) };
      case 'range':
        return { op: 'range', items: list(r.items, `${path}.items`, TXN_RANGE_LIMIT_MAX).map((it, j) => item(it, limits, `${path}.items[${j}]`)), more: bool(r.more, `${path}.more`) };
      case 'delete':
        return { op: 'delete', deleted: bool(r.deleted, `${path}.deleted`) };
      case 'deleteRange':
        return { op: 'deleteRange', deleted: int(r.deleted, `${path}.deleted`, 0) };
    }
  });
  return {
    succeeded: bool(o.succeeded, 'succeeded'),
    revision: int(o.revision, 'revision', 0),
    results,
    ...(absent(o.term) ? {} : { term: int(o.term, 'term', 0) }),
  };
}

function rangeBody(o: Obj, id: number, limits: Limits): ClientRequest {
  onlyKeys(o, RANGE_FIELDS, 'range');
  const hasPrefix = !absent(o.prefix);
  if (hasPrefix === !absent(o.start)) throw new InvalidArgumentError('range needs exactly one of prefix and start');
  if (hasPrefix && !absent(o.end)) throw new InvalidArgumentError('range with a prefix takes no end');
  const req: ClientRequest = {
    id,
    op: 'range',
    limit: int(o.limit, 'limit', 1, RANGE_LIMIT_MAX),
    consistency: consistency(o.consistency),
    ...revision(o.revision),
  };
  // A prefix may be empty (= every key); start/end/after are keys.
  if (hasPrefix) {
    req.prefix = bytes(o.prefix, 'prefix');
    if (req.prefix.length > limits.maxKeyBytes) throw new TooLargeError('prefix is longer than a key may be', limits.maxKeyBytes);
  } else {
    req.start = bytes(o.start, 'start');
    if (req.start.length > limits.maxKeyBytes) throw new TooLargeError('start is longer than a key may be', limits.maxKeyBytes);
  }
  if (!absent(o.end)) req.end = checkKey(o.end, limits, 'end');
  if (!absent(o.after)) req.after = checkKey(o.after, limits, 'after');
  return req;
}

/** The outcome of validating a request frame that had a usable id. */
export type ValidatedRequest =
  | { ok: true; request: ClientRequest }
  | { ok: false; id: number; error: QuorumKvError };

/**
 * Validates a decoded request. A frame without a usable `id` is malformed: this throws
 * {@link ProtocolError} and the server closes the connection. Any other problem is returned with
 * the id, so the server can answer that request with the error and keep the connection.
 */
export function validateRequest(x: unknown, limits: Limits): ValidatedRequest {
  if (!isObj(x)) throw new ProtocolError('a request must be a map');
  if (typeof x.id !== 'number' || !Number.isSafeInteger(x.id) || x.id < 0) {
    throw new ProtocolError('a request must have a non-negative integer id');
  }
  const id = x.id;
  try {
    return { ok: true, request: requestBody(x, id, limits) };
  } catch (e) {
    if (e instanceof QuorumKvError) return { ok: false, id, error: e };
    throw e;
  }
}

function leaderHint(x: unknown, path: string): LeaderHint {
  const o = obj(x, path);
  onlyKeys(o, LEADER_HINT_FIELDS, path);
  return { id: str(o.id, `${path}.id`, 1), address: str(o.address, `${path}.address`, 1) };
}

function wireError(x: unknown): WireError {
  const o = obj(x, 'error');
  onlyKeys(o, ERROR_FIELDS, 'error');
  const e: WireError = { code: str(o.code, 'error.code', 1, 64), message: str(o.message, 'error.message') };
  if (!absent(o.leaderHint)) e.leaderHint = leaderHint(o.leaderHint, 'error.leaderHint');
  if (!absent(o.retryAfterMs)) e.retryAfterMs = int(o.retryAfterMs, 'error.retryAfterMs', 0, REQUEST_TIMEOUT_MS_MAX);
  if (!absent(o.actualModRevision)) e.actualModRevision = int(o.actualModRevision, 'error.actualModRevision', 0);
  if (!absent(o.limitBytes)) e.limitBytes = int(o.limitBytes, 'error.limitBytes', 0);
  if (!absent(o.compactedRevision)) e.compactedRevision = int(o.compactedRevision, 'error.compactedRevision', 0);
  return e;
}

/**
 * Validates a decoded response envelope (id, ok, error). The `result` stays `unknown` until
 * {@link validateResult} checks it against the operation the id belongs to.
 * Throws {@link ProtocolError} on anything malformed.
 */
export function validateResponse(x: unknown): ClientResponse<unknown> {
  const o = obj(x, 'response');
  const id = int(o.id, 'id', 0);
  const ok = bool(o.ok, 'ok');
  if (ok) {
    onlyKeys(o, OK_RESPONSE_FIELDS, 'response');
    if (o.result === undefined) throw new ProtocolError('response.result is missing');
    return { id, ok, result: o.result };
  }
  onlyKeys(o, ERROR_RESPONSE_FIELDS, 'response');
  return { id, ok, error: wireError(o.error) };
}

function item(x: unknown, limits: Limits, path: string): WireItem {
  const o = obj(x, path);
  onlyKeys(o, ITEM_FIELDS, path);
  return {
    key: checkKey(o.key, limits, `${path}.key`),
    value: checkValue(o.value, limits, `${path}.value`),
    createRevision: int(o.createRevision, `${path}.createRevision`, 0),
    modRevision: int(o.modRevision, `${path}.modRevision`, 0),
    version: int(o.version, `${path}.version`, 0),
  };
}

function limitsOf(x: unknown): Limits {
  const o = obj(x, 'limits');
  onlyKeys(o, LIMITS_FIELDS, 'limits');
  return validateLimits({
    maxKeyBytes: int(o.maxKeyBytes, 'limits.maxKeyBytes', 1),
    maxValueBytes: int(o.maxValueBytes, 'limits.maxValueBytes', 1),
    maxFrameBytes: int(o.maxFrameBytes, 'limits.maxFrameBytes', 1),
  });
}

function member(x: unknown, i: number): MemberStatus {
  const path = `members[${i}]`;
  const o = obj(x, path);
  onlyKeys(o, MEMBER_FIELDS, path);
  const m: MemberStatus = {
    id: str(o.id, `${path}.id`, 1),
    address: str(o.address, `${path}.address`),
    kind: oneOf(o.kind, ['voter', 'learner'] as const, `${path}.kind`),
  };
  if (!absent(o.zone)) m.zone = str(o.zone, `${path}.zone`);
  return m;
}

function status(x: unknown): ClusterStatus {
  const o = obj(x, 'status');
  onlyKeys(o, STATUS_FIELDS, 'status');
  return {
    nodeId: str(o.nodeId, 'status.nodeId', 1),
    role: oneOf(o.role, ['follower', 'preCandidate', 'candidate', 'leader'] as const, 'status.role'),
    term: int(o.term, 'status.term', 0),
    leader: absent(o.leader) ? null : leaderHint(o.leader, 'status.leader'),
    commitIndex: int(o.commitIndex, 'status.commitIndex', 0),
    appliedIndex: int(o.appliedIndex, 'status.appliedIndex', 0),
    members: list(o.members, 'status.members', STATUS_LIST_MAX).map(member),
    warnings: list(o.warnings, 'status.warnings', STATUS_LIST_MAX).map((w, i) => str(w, `warnings[${i}]`)),
  };
}

function resultOf<K extends Op>(op: K, o: Obj, limits: Limits): ResultByOp[Op] {
  switch (op as Op) {
    case 'hello':
      onlyKeys(o, HELLO_RESULT_FIELDS, 'hello result');
      return {
        version: int(o.version, 'version', 0),
        serverId: str(o.serverId, 'serverId', 1),
        leader: absent(o.leader) ? null : leaderHint(o.leader, 'leader'),
        limits: limitsOf(o.limits),
      };
    case 'get':
      onlyKeys(o, GET_RESULT_FIELDS, 'get result');
      return { item: absent(o.item) ? null : item(o.item, limits, 'item') };
    case 'put':
    case 'cas':
      onlyKeys(o, WRITE_RESULT_FIELDS, `${op} result`);
      return { revision: int(o.revision, 'revision', 0), ...(absent(o.term) ? {} : { term: int(o.term, 'term', 0) }) };
    case 'delete':
      onlyKeys(o, DELETE_RESULT_FIELDS, 'delete result');
      return {
        revision: int(o.revision, 'revision', 0),
        deleted: bool(o.deleted, 'deleted'),
        ...(absent(o.term) ? {} : { term: int(o.term, 'term', 0) }),
      };
    case 'range':
      onlyKeys(o, RANGE_RESULT_FIELDS, 'range result');
      return {
        items: list(o.items, 'items', RANGE_LIMIT_MAX).map((it, i) => item(it, limits, `items[${i}]`)),
        more: bool(o.more, 'more'),
        ...(absent(o.revision) ? {} : { revision: int(o.revision, 'revision', 0) }),
      };
    case 'status':
      return status(o);
    case 'compact':
      onlyKeys(o, COMPACT_RESULT_FIELDS, 'compact result');
      return { compactedRevision: int(o.compactedRevision, 'compactedRevision', 0), revision: int(o.revision, 'revision', 0) };
    case 'watch':
      onlyKeys(o, WATCH_RESULT_FIELDS, 'watch result');
      return {
        // A revision's events are never split: an answer may hold a transaction's worth beyond the limit.
        events: list(o.events, 'events', WATCH_EVENTS_MAX + WATCH_REVISION_EVENTS_SLACK).map((e, i) => watchEvent(e, limits, `events[${i}]`)),
        revision: int(o.revision, 'revision', 0),
        compactedRevision: int(o.compactedRevision, 'compactedRevision', 0),
      };
    case 'txn':
      return txnResult(o, limits);
    case 'watchAck':
    case 'watchCancel':
      throw new ProtocolError(`${op} is never answered`);
  }
}

/**
 * Validates the `result` of a successful response to `op`. Throws {@link ProtocolError} (or
 * {@link TooLargeError} for an oversized key/value) when it does not match.
 */
export function validateResult<K extends Op>(op: K, result: unknown, limits: Limits): ResultByOp[K] {
  try {
    return resultOf(op, obj(result, `${op} result`), limits) as ResultByOp[K];
  } catch (e) {
    // Inside a response, any violation is the server breaking the protocol.
    if (e instanceof InvalidArgumentError) throw new ProtocolError(e.message, { cause: e });
    throw e;
  }
}
