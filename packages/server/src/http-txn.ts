// The JSON form of transactions on HTTP (`POST /v1/txn`): keys and values are strings — UTF-8, or
// base64 with `?encoding=base64` — checked by the same validation as the WebSocket request (every
// problem a 400 naming the field), and the answer is the TxnResult with its bytes as strings.
import { InvalidArgumentError, ProtocolError, QuorumKvError, type Limits, type TxnArgs, type TxnResult, type WireItem, txnBody } from '@quorumkv/protocol';

/** How keys and values are written as JSON strings. */
export type JsonEncoding = 'utf8' | 'base64';

/** Fields of the JSON body that hold bytes (in compares and ops). */
const BYTE_FIELDS = new Set(['key', 'value', 'prefix', 'start', 'end']);
const BODY_FIELDS = new Set(['compare', 'success', 'failure']);

/** A JSON string field as bytes, in the body's encoding. */
function toBytes(s: string, encoding: JsonEncoding, path: string): Uint8Array {
  if (encoding === 'utf8') return new Uint8Array(Buffer.from(s, 'utf8'));
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new InvalidArgumentError(`${path} is not valid base64`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/**
 * Turns the string fields of one compare or op into bytes (numbers and names stay). A value compare
 * carries bytes in `value`; a numeric one a number: strings become bytes only where a string is.
 */
function entryBytes(x: unknown, encoding: JsonEncoding, path: string): unknown {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return x; // the validator names it
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k] = BYTE_FIELDS.has(k) && typeof v === 'string' ? toBytes(v, encoding, `${path}.${k}`) : v;
  return out;
}

/** Parses and validates a JSON transaction body. Every problem is an InvalidArgumentError (HTTP 400). */
export function parseTxnJson(body: Uint8Array, encoding: JsonEncoding, limits: Limits): Pick<TxnArgs, 'compare' | 'success' | 'failure'> {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (e) {
    throw new InvalidArgumentError(`the body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidArgumentError('the body must be a JSON object with compare, success and failure');
  for (const k of Object.keys(raw)) if (!BODY_FIELDS.has(k)) throw new InvalidArgumentError(`unknown field "${k}" in the body`);
  const o = raw as Record<string, unknown>;
  const converted: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const name of BODY_FIELDS) {
    const list = o[name];
    converted[name] = Array.isArray(list) ? list.map((x, i) => entryBytes(x, encoding, `${name}[${i}]`)) : list;
  }
  try {
    return txnBody(Object.assign({}, converted), limits);
  } catch (e) {
    // On HTTP, a malformed body is the caller's error: 400, whatever the WebSocket would call it.
    if (e instanceof ProtocolError || (e instanceof QuorumKvError && e.code === 'QKV_PROTOCOL')) throw new InvalidArgumentError(e.message, { cause: e });
    throw e;
  }
}

/** A TxnResult as JSON, its keys and values as strings in `encoding`. */
export function txnResultJson(r: TxnResult, encoding: JsonEncoding): unknown {
  const text = (b: Uint8Array) => Buffer.from(b).toString(encoding);
  const item = (i: WireItem) => ({ key: text(i.key), value: text(i.value), createRevision: i.createRevision, modRevision: i.modRevision, version: i.version });
  return {
    succeeded: r.succeeded,
    revision: r.revision,
    results: r.results.map((x) => {
      switch (x.op) {
        case 'get':
          return { op: 'get', item: x.item ? item(x.item) : null };
        case 'range':
          return { op: 'range', items: x.items.map(item), more: x.more };
        default:
          return x;
      }
    }),
  };
}
