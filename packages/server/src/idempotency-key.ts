// The HTTP `Idempotency-Key` header: a write that carries one is applied once per key (the state
// machine's idempotency table, packages/storage/src/idempotency.ts). The request is identified by
// a SHA-256 of its method, path with query, and body, so the same key sent with anything else is
// refused (422 QKV_IDEMPOTENCY_KEY_REUSED) instead of answered with another request's result. A
// follower forwards the header with the request; the leader computes the same hash.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { InvalidArgumentError } from '@quorumkv/protocol';
import { IDEM_LIMITS, type IdemTag, isIdemKey } from '@quorumkv/storage';

/** The header, as Node.js lower-cases it. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';

/** The command tag of a request's Idempotency-Key, or undefined without one. Throws InvalidArgumentError for a malformed key. */
export function idempotencyTag(req: IncomingMessage, body: Uint8Array | undefined): IdemTag | undefined {
  const raw = req.headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return undefined;
  const key = Array.isArray(raw) ? undefined : raw;
  if (!isIdemKey(key)) {
    throw new InvalidArgumentError(`the Idempotency-Key header must be one value of 1..${IDEM_LIMITS.maxKeyChars} printable ASCII characters (no spaces)`);
  }
  const h = createHash('sha256').update(`${req.method ?? ''}\n${req.url ?? ''}\n`);
  if (body) h.update(body);
  return { key, hash: h.digest('hex') };
}
