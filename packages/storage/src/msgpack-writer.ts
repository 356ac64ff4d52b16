// Hand-written msgpack encoders for the records every applied write produces (kv record, session
// result, session header, applied-state meta record, log segment). They write EXACTLY the bytes
// the generic codec (msgpackr, with the options in codec.ts) writes, so stored data, state hashes
// and snapshots do not depend on which one encoded a record; test/msgpack-writer.test.ts pins that
// over seeded random inputs. They exist because msgpackr's per-call set-up and generic object walk
// were 7–9% of a node's main thread. Decoding stays with msgpackr.
//
// The fixed shapes (kv record, session header, segment) are written field by field by their
// encoders (kv-layout.ts, log-segments.ts); session results by encodeApplyResult (put/del from
// pre-encoded templates, the rest by the plain-value walk); meta records by packPlain. Anything
// the walk does not know (Map, Date, class instances, bigint, other typed arrays) goes to msgpackr.
//
// The rules msgpackr applies (and so these encoders must):
//   - a number n with n >>> 0 === n: positive fixint below 0x80, else uint8/16/32;
//     a number with n >> 0 === n (negative int32): negative fixint from -32, else int8/16/32;
//     any other number (above 2^32 - 1, below -2^31, fractional, NaN): float64 — never uint64;
//   - a string: fixstr/str8/str16/str32 by its UTF-8 length; below 64 UTF-16 units it is encoded
//     by hand (a lone surrogate becomes its 3-byte form), else by Buffer's UTF-8 writer (a lone
//     surrogate becomes U+FFFD);
//   - a Uint8Array or Buffer: bin8/16/32; an array: fixarray/array16/array32;
//   - a plain object: ALWAYS map16 (0xde, 2-byte count), own enumerable keys in for-in order;
//   - null: nil; undefined: fixext1 type 0 (d4 00 00); booleans: c2/c3.
import { pack } from './codec.js';

/**
 * Slab size for outputs that go straight into a write batch (kv records, headers, segments, meta).
 * A fresh slab costs about 2 µs whatever its size, so big slabs amortize it (with 8 KiB ones it
 * was ~5% of an apply); these outputs die with their batch, so they do not pin slabs for long.
 */
const BATCH_SLAB_BYTES = 64 * 1024;
/**
 * Slab size for session results, which can stay for hours as views in session headers' inline
 * lists, pinning their slab: 8 KiB, as msgpackr's (so no worse than before).
 */
const RESULT_SLAB_BYTES = 8 * 1024;
/** A slab grown past this many slab sizes for one big output is dropped after it (small views would pin it). */
const SLAB_REUSE_GROWTH_MAX = 4;
/** Strings shorter than this (UTF-16 units) are encoded by hand, longer ones by Buffer (msgpackr's cut-off). */
const HAND_ENCODED_STRING_UNITS_MAX = 0x40;

/** Thrown inside packPlain for a value outside the supported plain types; packPlain then uses msgpackr. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('unsupported value');

/**
 * A growable output buffer with msgpack's smallest-encoding writes as msgpackr applies them.
 * One output at a time: `begin()`, writes, `end()` returns a view of the bytes written that is
 * never written again (later outputs go after it, or into a new slab).
 */
export class MsgpackWriter {
  private buf: Buffer;
  private start = 0;
  private pos = 0;

  /** `slabBytes`: size of each fresh buffer (outputs are views into it; see the slab constants). */
  constructor(private readonly slabBytes = RESULT_SLAB_BYTES) {
    this.buf = Buffer.allocUnsafeSlow(slabBytes);
  }

  /** Starts an output, with room for `bytes` more (a hint; writes grow the buffer as needed). */
  begin(bytes = 0): void {
    this.start = this.pos;
    this.ensure(bytes);
  }

  /** Ends the output started by begin() and returns its bytes (a view that stays valid). */
  end(): Buffer {
    const out = this.buf.subarray(this.start, this.pos);
    if (this.buf.length > this.slabBytes * SLAB_REUSE_GROWTH_MAX) this.fresh(this.slabBytes);
    return out;
  }

  /** Bytes written so far in the current output (the offset in it where the next write goes). */
  get written(): number {
    return this.pos - this.start;
  }

  /** Abandons the output started by begin(). */
  abort(): void {
    this.pos = this.start;
  }

  /** Makes room for `bytes` more bytes of the current output. */
  ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const used = this.pos - this.start;
    const old = this.buf;
    const oldStart = this.start;
    this.fresh(Math.max(this.slabBytes, (used + bytes) * 2));
    old.copy(this.buf, 0, oldStart, oldStart + used);
    this.pos = used;
  }

  private fresh(bytes: number): void {
    this.buf = Buffer.allocUnsafeSlow(bytes);
    this.start = 0;
    this.pos = 0;
  }

  /** Bytes as they are (a pre-encoded part of a record). */
  writeRaw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < bytes.length; i++) b[p++] = bytes[i] as number;
    this.pos = p;
  }

  /** nil. */
  writeNil(): void {
    this.ensure(1);
    this.buf[this.pos++] = 0xc0;
  }

  /** undefined, as msgpackr writes it: fixext1 of type 0 with data 0. */
  writeUndefined(): void {
    this.ensure(3);
    const b = this.buf;
    b[this.pos] = 0xd4;
    b[this.pos + 1] = 0;
    b[this.pos + 2] = 0;
    this.pos += 3;
  }

  /** true/false. */
  writeBool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 0xc3 : 0xc2;
  }

  /** Any number, by msgpackr's rules (see the file comment): ints up to 32 bits, else float64. */
  writeNumber(v: number): void {
    this.ensure(9);
    const b = this.buf;
    let p = this.pos;
    if (v >>> 0 === v) {
      if (v < 0x80) b[p++] = v;
      else if (v < 0x100) {
        b[p++] = 0xcc;
        b[p++] = v;
      } else if (v < 0x10000) {
        b[p++] = 0xcd;
        b[p++] = v >>> 8;
        b[p++] = v & 0xff;
      } else {
        b[p++] = 0xce;
        b[p++] = v >>> 24;
        b[p++] = (v >>> 16) & 0xff;
        b[p++] = (v >>> 8) & 0xff;
        b[p++] = v & 0xff;
      }
    } else if (v >> 0 === v) {
      if (v >= -0x20) b[p++] = 0x100 + v;
      else if (v >= -0x80) {
        b[p++] = 0xd0;
        b[p++] = v + 0x100;
      } else if (v >= -0x8000) {
        b[p++] = 0xd1;
        b.writeInt16BE(v, p);
        p += 2;
      } else {
        b[p++] = 0xd2;
        b.writeInt32BE(v, p);
        p += 4;
      }
    } else {
      b[p++] = 0xcb;
      b.writeDoubleBE(v, p);
      p += 8;
    }
    this.pos = p;
  }

  /** A non-negative integer (msgpackr's rules: above 2^32 - 1 it is a float64). */
  writeUint(v: number): void {
    this.writeNumber(v);
  }

  /** A byte string: bin8/16/32. */
  writeBin(v: Uint8Array): void {
    const n = v.byteLength;
    this.ensure(n + 5);
    const b = this.buf;
    let p = this.pos;
    if (n < 0x100) {
      b[p++] = 0xc4;
      b[p++] = n;
    } else if (n < 0x10000) {
      b[p++] = 0xc5;
      b[p++] = n >>> 8;
      b[p++] = n & 0xff;
    } else {
      b[p++] = 0xc6;
      b.writeUInt32BE(n, p);
      p += 4;
    }
    b.set(v, p);
    this.pos = p + n;
  }

  /** A string: fixstr/str8/str16/str32 by UTF-8 length (see the file comment on surrogates). */
  writeStr(v: string): void {
    const units = v.length;
    this.ensure(units * 3 + 5);
    // Like msgpackr: guess the header size from the UTF-16 length, write the bytes after it, and
    // move them if the UTF-8 length needs a bigger header.
    const guessHeader = units < 0x20 ? 1 : units < 0x100 ? 2 : units < 0x10000 ? 3 : 5;
    const at = this.pos + guessHeader;
    const n = units < HAND_ENCODED_STRING_UNITS_MAX ? this.utf8ByHand(v, at) : this.buf.write(v, at, 'utf8');
    const b = this.buf;
    let p = this.pos;
    if (n < 0x20) {
      b[p++] = 0xa0 | n;
    } else if (n < 0x100) {
      if (guessHeader < 2) b.copyWithin(p + 2, p + 1, p + 1 + n);
      b[p++] = 0xd9;
      b[p++] = n;
    } else if (n < 0x10000) {
      if (guessHeader < 3) b.copyWithin(p + 3, p + 2, p + 2 + n);
      b[p++] = 0xda;
      b[p++] = n >>> 8;
      b[p++] = n & 0xff;
    } else {
      if (guessHeader < 5) b.copyWithin(p + 5, p + 3, p + 3 + n);
      b[p++] = 0xdb;
      b.writeUInt32BE(n, p);
      p += 4;
    }
    this.pos = p + n;
  }

  /** UTF-8 of `v` at `at` exactly as msgpackr's hand loop writes it; returns the byte count. */
  private utf8ByHand(v: string, at: number): number {
    const b = this.buf;
    let p = at;
    for (let i = 0; i < v.length; i++) {
      let c1 = v.charCodeAt(i);
      let c2: number;
      if (c1 < 0x80) {
        b[p++] = c1;
      } else if (c1 < 0x800) {
        b[p++] = (c1 >> 6) | 0xc0;
        b[p++] = (c1 & 0x3f) | 0x80;
      } else if ((c1 & 0xfc00) === 0xd800 && ((c2 = v.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
        c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff);
        i++;
        b[p++] = (c1 >> 18) | 0xf0;
        b[p++] = ((c1 >> 12) & 0x3f) | 0x80;
        b[p++] = ((c1 >> 6) & 0x3f) | 0x80;
        b[p++] = (c1 & 0x3f) | 0x80;
      } else {
        b[p++] = (c1 >> 12) | 0xe0;
        b[p++] = ((c1 >> 6) & 0x3f) | 0x80;
        b[p++] = (c1 & 0x3f) | 0x80;
      }
    }
    return p - at;
  }

  /** An array header: fixarray/array16/array32. */
  writeArrayHeader(length: number): void {
    this.ensure(5);
    const b = this.buf;
    if (length < 0x10) b[this.pos++] = 0x90 | length;
    else if (length < 0x10000) {
      b[this.pos] = 0xdc;
      b[this.pos + 1] = length >>> 8;
      b[this.pos + 2] = length & 0xff;
      this.pos += 3;
    } else {
      b[this.pos] = 0xdd;
      b.writeUInt32BE(length, this.pos + 1);
      this.pos += 5;
    }
  }

  /**
   * A map header as msgpackr writes it for plain objects: always map16, whatever the size
   * (`size` must be at most 0xffff). Not the smallest encoding for small maps, but the bytes on disk.
   */
  writeMapHeader(size: number): void {
    this.ensure(3);
    const b = this.buf;
    b[this.pos] = 0xde;
    b[this.pos + 1] = size >>> 8;
    b[this.pos + 2] = size & 0xff;
    this.pos += 3;
  }

  /**
   * A plain value: null, undefined, boolean, number, string, Uint8Array/Buffer, array, plain
   * object (of those). Throws UNSUPPORTED for anything else (the caller falls back to msgpackr).
   */
  writePlain(v: unknown): void {
    switch (typeof v) {
      case 'number':
        return this.writeNumber(v);
      case 'string':
        return this.writeStr(v);
      case 'boolean':
        return this.writeBool(v);
      case 'undefined':
        return this.writeUndefined();
      case 'object':
        return this.writeObjectValue(v);
      default:
        throw UNSUPPORTED;
    }
  }

  private writeObjectValue(v: object | null): void {
    if (v === null) return this.writeNil();
    const c = v.constructor;
    if (c === Object) return this.writePlainObject(v as Record<string, unknown>);
    if (c === Array) {
      const a = v as unknown[];
      this.writeArrayHeader(a.length);
      for (let i = 0; i < a.length; i++) this.writePlain(a[i]);
      return;
    }
    if (c === Uint8Array || c === Buffer) return this.writeBin(v as Uint8Array);
    throw UNSUPPORTED;
  }

  /** Own enumerable keys in for-in order, the way msgpackr walks a plain object. */
  private writePlainObject(o: Record<string, unknown>): void {
    this.writeMapHeader(0);
    // Relative to `start`: a growth while writing the entries moves the output to a new buffer.
    const sizeAt = this.pos - 2 - this.start;
    let size = 0;
    const own: unknown = o.hasOwnProperty; // msgpackr calls the object's own hasOwnProperty, so do we
    for (const key in o) {
      if (typeof own !== 'function' || (own as (this: object, k: string) => unknown).call(o, key)) {
        this.writeStr(key);
        this.writePlain(o[key]);
        size++;
      }
    }
    if (size > 0xffff) throw UNSUPPORTED; // msgpackr refuses it; let it say so
    this.buf[this.start + sizeAt] = size >>> 8;
    this.buf[this.start + sizeAt + 1] = size & 0xff;
  }
}

const writer = new MsgpackWriter(BATCH_SLAB_BYTES);
const resultWriter = new MsgpackWriter(RESULT_SLAB_BYTES);

/** The writer for outputs that go straight into a write batch (synchronous, one output at a time). */
export function sharedWriter(): MsgpackWriter {
  return writer;
}

/**
 * Encodes a plain value (null, undefined, boolean, number, string, bytes, arrays and plain
 * objects of those) to exactly the bytes codec.ts `pack` writes; any other value goes to `pack`.
 * The output is a view into a batch slab: meant for a write batch, not to be kept for long.
 */
export function packPlain(value: unknown): Uint8Array {
  return packPlainWith(writer, value);
}

function packPlainWith(w: MsgpackWriter, value: unknown): Uint8Array {
  w.begin();
  try {
    w.writePlain(value);
  } catch (err) {
    w.abort();
    if (err instanceof Unsupported) return pack(value);
    throw err;
  }
  return w.end();
}

/** Pre-encodes the constant parts of a record (a run of strings and map headers) with the writer's own rules. */
export function template(write: (w: MsgpackWriter) => void): Uint8Array {
  const w = new MsgpackWriter(64);
  w.begin();
  write(w);
  return Uint8Array.from(w.end());
}

/** `{op: 'put', revision: …`, then ` term: …}`, as msgpackr writes them. */
const PUT_HEAD = template((w) => (w.writeMapHeader(3), w.writeStr('op'), w.writeStr('put'), w.writeStr('revision')));
/** `{op: 'del', deleted: …`, then ` revision: …`, then ` term: …}`. */
const DEL_HEAD = template((w) => (w.writeMapHeader(4), w.writeStr('op'), w.writeStr('del'), w.writeStr('deleted')));
const REVISION_KEY = template((w) => w.writeStr('revision'));
const TERM_KEY = template((w) => w.writeStr('term'));
const PUT_KEYS = ['op', 'revision', 'term'] as const;
const DEL_KEYS = ['op', 'deleted', 'revision', 'term'] as const;

/** The shape of a put/del result as withTerm() builds it. */
interface TermedResult {
  op: string;
  deleted?: unknown;
  revision?: unknown;
  term?: unknown;
}

/**
 * True when for-in yields exactly `keys`, in order, all own. For-in lists own keys before
 * inherited ones, so the last one being own makes every one own (what msgpackr's walk checks).
 */
export function hasExactKeys(o: object, keys: readonly string[]): boolean {
  let i = 0;
  for (const k in o) {
    if (k !== keys[i]) return false;
    i++;
  }
  return i === keys.length && Object.prototype.hasOwnProperty.call(o, keys[i - 1] as string);
}

/**
 * Encodes a session result (an ApplyResult) to exactly the bytes codec.ts `pack` writes. Put and
 * del results in the key order withTerm() gives them (`{op, revision, term}`,
 * `{op, deleted, revision, term}`) use pre-encoded templates; every other result (cas, none,
 * error, or any other key order) takes the plain-value walk, which is byte-identical too.
 */
export function encodeApplyResult(result: object): Uint8Array {
  const r = result as TermedResult;
  if (r.constructor === Object && typeof r.revision === 'number' && typeof r.term === 'number') {
    if (r.op === 'put' && hasExactKeys(r, PUT_KEYS)) {
      resultWriter.begin(32);
      resultWriter.writeRaw(PUT_HEAD);
      resultWriter.writeNumber(r.revision);
      resultWriter.writeRaw(TERM_KEY);
      resultWriter.writeNumber(r.term);
      return resultWriter.end();
    }
    if (r.op === 'del' && typeof r.deleted === 'boolean' && hasExactKeys(r, DEL_KEYS)) {
      resultWriter.begin(40);
      resultWriter.writeRaw(DEL_HEAD);
      resultWriter.writeBool(r.deleted);
      resultWriter.writeRaw(REVISION_KEY);
      resultWriter.writeNumber(r.revision);
      resultWriter.writeRaw(TERM_KEY);
      resultWriter.writeNumber(r.term);
      return resultWriter.end();
    }
  }
  return packPlainWith(resultWriter, result);
}
