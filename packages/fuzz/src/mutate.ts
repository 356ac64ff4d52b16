// Raw mutation: byte-level edits applied to the output of a structure-aware generator, so the
// fuzzers reach both "almost valid" inputs (one field wrong) and inputs no encoder produces
// (truncated, spliced, bit-flipped). Every edit is drawn by fast-check, so it replays from the seed.
import fc from 'fast-check';

/** Most edits applied to one input. */
export const MUTATIONS_MAX = 4;
/** Most bytes one insertion adds. */
const INSERT_BYTES_MAX = 16;

/** One byte-level edit at a position relative to the input's length (0 ≤ at < 1). */
export type ByteEdit =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'duplicate'; at: number; length: number };

const at = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
/** Bytes that make parsers branch: msgpack type markers, JSON punctuation, huge lengths. */
const interestingByte = fc.constantFrom(0x00, 0x7f, 0x80, 0x90, 0x9f, 0xa0, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x0a, 0x0d, 0x25);

/** Arbitrary for one {@link ByteEdit}. */
export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at, byte: fc.oneof(interestingByte, fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: INSERT_BYTES_MAX }) }),
  fc.record({ kind: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at }),
  fc.record({ kind: fc.constant('duplicate' as const), at, length: fc.integer({ min: 1, max: 32 }) }),
);

/** Applies edits in order; returns a new array. */
export function applyEdits(input: Uint8Array, edits: readonly ByteEdit[]): Uint8Array {
  let b = input;
  for (const e of edits) b = applyEdit(b, e);
  return b;
}

function applyEdit(b: Uint8Array, e: ByteEdit): Uint8Array {
  const i = Math.floor(e.at * b.length);
  switch (e.kind) {
    case 'flip': {
      if (b.length === 0) return b;
      const out = Uint8Array.from(b); // a copy even when b is a Buffer (whose slice() is a view)
      out[i] = out[i]! ^ (1 << e.bit);
      return out;
    }
    case 'set': {
      if (b.length === 0) return Uint8Array.of(e.byte);
      const out = Uint8Array.from(b); // a copy even when b is a Buffer (whose slice() is a view)
      out[i] = e.byte;
      return out;
    }
    case 'insert':
      return concat(b.subarray(0, i), e.bytes, b.subarray(i));
    case 'delete':
      return concat(b.subarray(0, i), b.subarray(i + e.length));
    case 'truncate':
      return b.slice(0, i);
    case 'duplicate':
      return concat(b.subarray(0, i + e.length), b.subarray(i));
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/**
 * Structure-aware inputs, half of them raw-mutated: `valid` generates encodings a correct peer
 * or client would send; the mutated half edits their bytes; a few are plain random bytes.
 */
export function withMutation(valid: fc.Arbitrary<Uint8Array>, randomMaxBytes = 256): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 5, arbitrary: fc.tuple(valid, fc.array(byteEdit, { minLength: 1, maxLength: MUTATIONS_MAX })).map(([b, edits]) => applyEdits(b, edits)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: randomMaxBytes }) },
  );
}

/** The same for text (mutated as UTF-8 bytes, decoded back leniently). */
export function textWithMutation(valid: fc.Arbitrary<string>, randomMaxChars = 256): fc.Arbitrary<string> {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  return fc.oneof(
    { weight: 4, arbitrary: valid },
    { weight: 5, arbitrary: fc.tuple(valid, fc.array(byteEdit, { minLength: 1, maxLength: MUTATIONS_MAX })).map(([s, edits]) => dec.decode(applyEdits(enc.encode(s), edits))) },
    { weight: 1, arbitrary: fc.string({ maxLength: randomMaxChars, unit: 'binary' }) },
  );
}

/** Hex (at most 64 bytes shown) of a byte input, for failure reports. */
export function showBytes(b: Uint8Array): string {
  const hex = Buffer.from(b).toString('hex');
  return `${b.length} bytes: ${hex.length > 4096 ? hex.slice(0, 4096) + '…' : hex}`;
}
