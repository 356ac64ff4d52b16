// Key-order helpers that the server and the fakes must agree on; and the browser-safety rule.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { asciiString, compareBytes, inInterval, prefixEnd, rangeInterval, toBytes } from '@quorumkv/protocol';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('key order', () => {
  it('compares bytes lexicographically, shorter first on a tie', () => {
    expect(compareBytes(b('a'), b('b'))).toBeLessThan(0);
    expect(compareBytes(b('ab'), b('a'))).toBeGreaterThan(0);
    expect(compareBytes(new Uint8Array([0xff]), new Uint8Array([0x00, 0x01]))).toBeGreaterThan(0);
    expect(compareBytes(b('x'), b('x'))).toBe(0);
  });

  it('computes the end of a prefix without touching the prefix', () => {
    const p = Buffer.from('ab\xff', 'latin1');
    expect(Array.from(prefixEnd(p) ?? [])).toEqual([0x61, 0x63]);
    expect(Array.from(p)).toEqual([0x61, 0x62, 0xff]);
    expect(prefixEnd(new Uint8Array([0xff, 0xff]))).toBeNull();
    expect(prefixEnd(new Uint8Array())).toBeNull();
  });

  it('applies the after-cursor to prefix and start/end intervals', () => {
    const iv = rangeInterval({ prefix: b('u/'), after: b('u/3') });
    expect(inInterval(b('u/3'), iv)).toBe(false);
    expect(inInterval(b('u/30'), iv)).toBe(true);
    expect(inInterval(b('v'), iv)).toBe(false);
    const se = rangeInterval({ start: b('b'), end: b('d') });
    expect([b('a'), b('b'), b('c'), b('d')].map((k) => inInterval(k, se))).toEqual([false, true, true, false]);
    const open = rangeInterval({ start: b('m') });
    expect(inInterval(b('zzz'), open)).toBe(true);
    const early = rangeInterval({ start: b('m'), after: b('a') });
    expect(Array.from(early.startInclusive)).toEqual(Array.from(b('m')));
  });

  it('encodes strings as UTF-8 and refuses other types', () => {
    expect(Array.from(toBytes('é'))).toEqual([0xc3, 0xa9]);
    expect(() => toBytes(5 as never)).toThrow(/string or a Uint8Array/);
  });
});

describe('asciiString', () => {
  it('decodes an ASCII slice and refuses any byte >= 0x80', () => {
    const bytes = b('xx-session-0123456789abcdef-yy');
    expect(asciiString(bytes, 3, 27)).toBe('session-0123456789abcdef');
    expect(asciiString(bytes, 0, 0)).toBe('');
    expect(asciiString(b('caf\u00e9'), 0, 5)).toBeUndefined();
    expect(asciiString(Uint8Array.of(0x41, 0x80), 0, 2)).toBeUndefined();
    expect(asciiString(Uint8Array.of(0x41, 0x80), 0, 1)).toBe('A');
  });
});

describe('browser safety', () => {
  it('has no Node-only imports or globals in the protocol and client sources', () => {
    for (const pkg of ['protocol', 'client']) {
      const dir = fileURLToPath(new URL(`../../${pkg}/src/`, import.meta.url));
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
        const src = readFileSync(dir + f, 'utf8');
        expect(src, `${pkg}/src/${f}`).not.toMatch(/from ['"]node:|require\(|\bBuffer\.|\bprocess\./);
        // `ws` may only be loaded lazily (dynamic import) so browser bundles never need it.
        expect(src, `${pkg}/src/${f}`).not.toMatch(/from ['"]ws['"]/);
      }
    }
  });
});
