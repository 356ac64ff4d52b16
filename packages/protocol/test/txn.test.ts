// Validation of `txn` requests and results: every field checked, limits named, nothing trusted.
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, TXN_OPS_MAX, validateRequest, validateResult } from '@quorumkv/protocol';

const b = (s: string) => new TextEncoder().encode(s);
const session = { id: 's', seq: 1, ackedBelow: 1 };
const txn = (body: Record<string, unknown>) => validateRequest({ id: 1, op: 'txn', session, ...body }, DEFAULT_LIMITS);

describe('txn request validation', () => {
  it('accepts compares on every target and every op kind', () => {
    const r = txn({
      compare: [
        { key: b('a'), target: 'value', op: '==', value: b('x') },
        { key: b('a'), target: 'modRevision', op: '<', value: 7 },
      ],
      success: [
        { op: 'put', key: b('a'), value: b('1') },
        { op: 'get', key: b('a') },
        { op: 'range', prefix: b(''), limit: 10 },
        { op: 'delete', key: b('b') },
        { op: 'deleteRange', start: b('c'), end: b('d') },
      ],
      failure: [],
    });
    expect(r.ok).toBe(true);
  });

  it.each([
    [{ compare: [{ key: b('a'), target: 'lease', op: '==', value: 1 }] }, /compare\[0\]\.target/],
    [{ compare: [{ key: b('a'), target: 'version', op: '>=', value: 1 }] }, /compare\[0\]\.op/],
    [{ compare: [{ key: b('a'), target: 'version', op: '==', value: b('1') }] }, /compare\[0\]\.value/],
    [{ success: [{ op: 'range', prefix: b('a'), start: b('a'), limit: 1 }] }, /exactly one of prefix and start/],
    [{ success: [{ op: 'range', prefix: b('a'), limit: 1001 }] }, /success\[0\]\.limit/],
    [{ success: [{ op: 'deleteRange', prefix: b('a'), end: b('b') }] }, /takes no end/],
    [{ failure: [{ op: 'put', key: b(''), value: b('1') }] }, /failure\[0\]\.key/],
    [{ success: [{ op: 'get', key: b('a'), extra: 1 }] }, /unknown field "extra"/],
    [{ success: Array.from({ length: TXN_OPS_MAX + 1 }, () => ({ op: 'get', key: b('a') })) }, /more than 128/],
  ])('refuses %#', (body, message) => {
    const r = txn(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(message);
  });

  it('checks results: each op result by its kind', () => {
    const ok = validateResult('txn', { succeeded: true, revision: 3, results: [{ op: 'put' }, { op: 'get', item: null }, { op: 'deleteRange', deleted: 2 }] }, DEFAULT_LIMITS);
    expect(ok.results).toEqual([{ op: 'put' }, { op: 'get', item: null }, { op: 'deleteRange', deleted: 2 }]);
    expect(() => validateResult('txn', { succeeded: true, revision: 3, results: [{ op: 'delete', deleted: 2 }] }, DEFAULT_LIMITS)).toThrow(/deleted/);
  });
});
