// Client frames: what a client sends on the `/client` WebSocket, decoded by the server exactly as
// the client endpoint does (decodeRequestFrame: the direct reader for the usual put/get/delete
// frames, msgpackr + validateRequest for the rest). Generated requests cover every op with valid
// and out-of-range fields; some are raw-mutated. Invariants: decoding throws only typed errors
// (ProtocolError / TooLargeError close the connection); a well-framed bad request comes back as
// `{ok: false}` with a typed error; the direct reader never disagrees with the generic path
// (differential); an unmutated valid request decodes to exactly itself (never misread).
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { DEFAULT_LIMITS, QuorumKvError, decodeMsgpack, decodeRequestFrame, encodeFrame, fastDecodeRequest, validateRequest, type ClientRequest, type Limits } from '@quorumkv/protocol';
import { FuzzViolation, type FuzzTarget, type Outcome, type Surface } from '../runner.js';
import { applyEdits, byteEdit, MUTATIONS_MAX, showBytes } from '../mutate.js';

/** Small limits, so "too large" is reachable with small inputs. */
const LIMITS: Limits = { maxKeyBytes: 64, maxValueBytes: 256, maxFrameBytes: 1024 };

const int = fc.oneof({ weight: 6, arbitrary: fc.nat({ max: 1000 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 2 ** 32, Number.MAX_SAFE_INTEGER, 1.5) });
const key = fc.uint8Array({ minLength: 0, maxLength: 80 });
const value = fc.uint8Array({ maxLength: 300 });
const session = fc.record({ id: fc.string({ minLength: 0, maxLength: 70 }), seq: int, ackedBelow: int });
const base = { id: int, timeoutMs: fc.option(int, { nil: undefined }) };
const consistency = fc.constantFrom('linearizable', 'stale', 'eventual');

const request = fc.oneof(
  fc.record({ ...base, op: fc.constant('hello'), version: fc.constantFrom(1, 2) }),
  fc.record({ ...base, op: fc.constant('get'), key, consistency, revision: fc.option(int, { nil: undefined }) }),
  fc.record({ ...base, op: fc.constant('put'), key, value, session }),
  fc.record({ ...base, op: fc.constant('delete'), key, session }),
  fc.record({
    ...base,
    op: fc.constant('cas'),
    key,
    condition: fc.oneof(fc.record({ kind: fc.constant('modRevision'), modRevision: int }), fc.record({ kind: fc.constant('value'), value }), fc.record({ kind: fc.constant('absent') })),
    action: fc.oneof(fc.record({ kind: fc.constant('put'), value }), fc.record({ kind: fc.constant('delete') })),
    session,
  }),
  fc.record({ ...base, op: fc.constant('range'), prefix: fc.option(key, { nil: undefined }), start: fc.option(key, { nil: undefined }), end: fc.option(key, { nil: undefined }), limit: int, consistency }),
  fc.record({ ...base, op: fc.constant('status') }),
  fc.record({ ...base, op: fc.constant('compact'), revision: int }),
  fc.record({ ...base, op: fc.string({ maxLength: 8 }) }),
) as fc.Arbitrary<Record<string, unknown>>;

/** One input: the frame bytes, and the request it encodes when it was not mutated. */
export interface ClientFrameInput {
  bytes: Uint8Array;
  original?: Record<string, unknown>;
}

function encode(r: Record<string, unknown>): Uint8Array {
  const clean = Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
  return encodeFrame(clean as unknown as ClientRequest, Number.MAX_SAFE_INTEGER);
}

export const clientFrameSurface: Surface<ClientFrameInput> = {
  name: 'client-frame',
  description: 'client WebSocket frames, decoded as the client endpoint does',
  arbitrary: () =>
    fc.oneof(
      { weight: 4, arbitrary: request.map((r) => ({ bytes: encode(r), original: r })) },
      { weight: 5, arbitrary: fc.tuple(request, fc.array(byteEdit, { minLength: 1, maxLength: MUTATIONS_MAX })).map(([r, e]) => ({ bytes: applyEdits(encode(r), e) })) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes })) },
    ),
  open: async () => openClientFrameTarget(),
  show: (i) => `${showBytes(i.bytes)}${i.original ? ` (unmutated: ${JSON.stringify(i.original, (_k, v: unknown) => (v instanceof Uint8Array ? `<${Buffer.from(v).toString('hex')}>` : v))})` : ''}`,
};

function decode(bytes: Uint8Array): ReturnType<typeof decodeRequestFrame> | 'closed' {
  try {
    return decodeRequestFrame(bytes, LIMITS);
  } catch (e) {
    if (e instanceof QuorumKvError && (e.code === 'QKV_PROTOCOL' || e.code === 'QKV_TOO_LARGE')) return 'closed';
    throw new FuzzViolation(`decodeRequestFrame threw ${(e as Error)?.name}: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
  }
}

/** The generic path's answer, for the differential check. */
function slowPath(bytes: Uint8Array): unknown {
  try {
    return validateRequest(decodeMsgpack(bytes, LIMITS.maxFrameBytes), LIMITS);
  } catch (e) {
    return { threw: (e as QuorumKvError).code ?? String(e) };
  }
}

/** Plain data (Uint8Array and Buffer alike as hex, errors as their code) for deep comparison. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return `<${Buffer.from(v).toString('hex')}>`;
  if (v instanceof Error) return { code: (v as QuorumKvError).code };
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

function openClientFrameTarget(): FuzzTarget<ClientFrameInput> {
  const check = (input: ClientFrameInput): Outcome => {
    const got = decode(input.bytes);
    const fast = fastDecodeRequest(input.bytes, LIMITS);
    if (fast !== undefined && !isDeepStrictEqual(plain(fast), plain(slowPath(input.bytes)))) {
      throw new FuzzViolation(`the direct reader and the generic path disagree: fast ${JSON.stringify(plain(fast))} vs generic ${JSON.stringify(plain(slowPath(input.bytes)))}`);
    }
    if (got === 'closed') return 'refused';
    if (!got.ok) {
      if (!(got.error instanceof QuorumKvError)) throw new FuzzViolation(`a bad request came back with an untyped error: ${String(got.error)}`);
      return 'refused';
    }
    if (input.original && !isDeepStrictEqual(plain(got.request), plain(input.original))) {
      const o = input.original;
      // Validation may fill defaults (none today); any difference in a field that was sent is a misread.
      const sentFields = Object.keys(o).filter((k) => o[k] !== undefined);
      const mismatch = sentFields.filter((k) => !isDeepStrictEqual(plain((got.request as unknown as Record<string, unknown>)[k]), plain(o[k])));
      if (mismatch.length > 0) throw new FuzzViolation(`a valid request was misread in ${mismatch.join(', ')}: got ${JSON.stringify(plain(got.request))}`);
    }
    return 'accepted';
  };
  const control = encode({ id: 1, op: 'put', key: new Uint8Array([1]), value: new Uint8Array([2]), session: { id: 's', seq: 1, ackedBelow: 1 } });
  return {
    feed: check,
    control: () => {
      const r = decode(control);
      if (r === 'closed' || !r.ok) throw new FuzzViolation('a valid put frame is no longer accepted');
    },
    close: async () => undefined,
  };
}
