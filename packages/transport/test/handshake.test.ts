import { describe, expect, it } from 'vitest';
import { CloseCode, backoffDelayMs, resolveLimits, TransportConfigError, peerUrl } from '../src/index.js';
import { createHelloHeader, ReplayCache, verifyHelloHeader, type HelloCheck } from '../src/handshake.js';

const SECRET = 'a-secret-of-sixteen-chars';
const NOW = 1_700_000_000_000;
const INC = '1'.repeat(32);

function check(over: Partial<HelloCheck> = {}): HelloCheck {
  const cache = new ReplayCache(100, 30_000);
  return {
    selfId: 'n2',
    clusterSecret: SECRET,
    isPeer: (id) => id === 'n1' || id === 'n3',
    nowMs: NOW,
    maxAgeMs: 30_000,
    rememberNonce: (n, now) => cache.remember(n, now),
    ...over,
  };
}

const hello = (over: Partial<Parameters<typeof createHelloHeader>[0]> = {}) =>
  createHelloHeader({ from: 'n1', to: 'n2', channel: 'raft', clusterSecret: SECRET, nowMs: NOW, incarnation: INC, ...over });

function refusal(raw: string | undefined, c: HelloCheck = check()) {
  const v = verifyHelloHeader(raw, c);
  if (v.ok) throw new Error('expected a refusal');
  return v;
}

describe('hello verification', () => {
  it('accepts a well-formed hello signed with the cluster secret', () => {
    const v = verifyHelloHeader(hello(), check());
    expect(v.ok && v.hello.from).toBe('n1');
  });

  it('refuses a wrong secret, a missing proof and a missing header as unauthorized', () => {
    expect(refusal(hello({ clusterSecret: 'another-secret-sixteen' }))).toMatchObject({ code: CloseCode.Unauthorized, reason: 'bad proof of the cluster secret' });
    expect(refusal(hello({ clusterSecret: null })).code).toBe(CloseCode.Unauthorized);
    expect(refusal(undefined).code).toBe(CloseCode.Unauthorized);
  });

  it('refuses a stale or future timestamp', () => {
    expect(refusal(hello({ nowMs: NOW - 31_000 })).reason).toMatch(/stale hello/);
    expect(refusal(hello({ nowMs: NOW + 31_000 })).reason).toMatch(/stale hello/);
  });

  it('refuses a replayed hello', () => {
    const c = check();
    const h = hello();
    expect(verifyHelloHeader(h, c).ok).toBe(true);
    expect(refusal(h, c)).toMatchObject({ code: CloseCode.Unauthorized, reason: 'replayed hello' });
  });

  it('refuses an unknown peer id and a wrong target id', () => {
    expect(refusal(hello({ from: 'n9' }))).toMatchObject({ code: CloseCode.Forbidden, reason: 'unknown peer id n9' });
    expect(refusal(hello({ to: 'n3' }))).toMatchObject({ code: CloseCode.Forbidden });
  });

  it('refuses the snapshot channel (reserved) and a tampered channel', () => {
    expect(refusal(hello({ channel: 'snapshot' })).code).toBe(CloseCode.Unsupported);
    const tampered = JSON.parse(Buffer.from(hello({ channel: 'raft' }), 'base64url').toString());
    tampered.channel = 'snapshot';
    expect(refusal(Buffer.from(JSON.stringify(tampered)).toString('base64url')).code).toBe(CloseCode.Unauthorized);
  });

  it('refuses malformed hellos as bad input', () => {
    for (const raw of ['!!!', Buffer.from('[1,2]').toString('base64url'), Buffer.from('{"v":1}').toString('base64url'), 'x'.repeat(5000)]) {
      expect(refusal(raw).code).toBe(CloseCode.BadInput);
    }
  });

  it('refuses a hello stamped before the node started (a replay captured before a restart), even with a fresh nonce', () => {
    const c = check({ notBeforeMs: NOW - 1000 });
    expect(verifyHelloHeader(hello({ nowMs: NOW - 1000 }), c).ok).toBe(true);
    const r = refusal(hello({ nowMs: NOW - 1001 }), c);
    expect(r.code).toBe(CloseCode.Unauthorized);
    expect(r.reason).toMatch(/before this node started/);
  });

  it('carries the incarnation under the MAC and asks the host about it before accepting', () => {
    const asked: string[] = [];
    const known = (peer: string, inc: string) => {
      asked.push(`${peer}:${inc}`);
      return inc === INC ? null : 'n1 is another incarnation';
    };
    expect(verifyHelloHeader(hello(), check({ checkIncarnation: known })).ok).toBe(true);
    expect(refusal(hello({ incarnation: '2'.repeat(32) }), check({ checkIncarnation: known }))).toMatchObject({
      code: CloseCode.WrongIncarnation,
      reason: 'n1 is another incarnation',
    });
    expect(asked).toEqual([`n1:${INC}`, `n1:${'2'.repeat(32)}`]);
    // Swapping the incarnation of a signed hello breaks the proof (the host is never asked).
    const h = JSON.parse(Buffer.from(hello(), 'base64url').toString('utf8')) as Record<string, unknown>;
    h.incarnation = '2'.repeat(32);
    expect(refusal(Buffer.from(JSON.stringify(h)).toString('base64url'), check({ checkIncarnation: known })).code).toBe(CloseCode.Unauthorized);
    expect(asked).toHaveLength(2);
    // A malformed incarnation is bad input; a probe is answered whatever the incarnation.
    expect(refusal(hello({ incarnation: 'xyz' })).code).toBe(CloseCode.BadInput);
    expect(verifyHelloHeader(hello({ channel: 'probe', incarnation: '2'.repeat(32) }), check({ checkIncarnation: known, acceptProbes: true })).ok).toBe(true);
  });

  it("hands the hello's cluster id to the incarnation rule ('' when the dialler has none)", () => {
    const seen: string[] = [];
    const rule = (_peer: string, _inc: string, cluster: string) => {
      seen.push(cluster);
      return null;
    };
    const CID = 'c'.repeat(32);
    expect(verifyHelloHeader(hello({ clusterId: CID }), check({ checkIncarnation: rule })).ok).toBe(true);
    expect(verifyHelloHeader(hello(), check({ checkIncarnation: rule })).ok).toBe(true);
    expect(seen).toEqual([CID, '']);
  });

  it('bounds the replay cache', () => {
    const cache = new ReplayCache(2, 1000);
    expect(cache.remember('a', 0)).toBe('new');
    expect(cache.remember('b', 0)).toBe('new');
    expect(cache.remember('c', 0)).toBe('full');
    expect(cache.remember('c', 2001)).toBe('new'); // a and b expired
  });
});

describe('limits and back-off', () => {
  it('validates limits once, naming the field', () => {
    expect(() => resolveLimits({ maxFrameBytes: 0 })).toThrow(/limits.maxFrameBytes must be a positive integer/);
    expect(() => resolveLimits({ maxQueuedBytes: 1 })).toThrow(TransportConfigError);
    expect(() => resolveLimits({ pingIntervalMs: 10_000 })).toThrow(/inboundIdleTimeoutMs/);
    expect(() => resolveLimits({ bogus: 1 } as never)).toThrow(/not a known limit/);
    expect(resolveLimits().maxFrameBytes).toBe(4 * 1024 * 1024);
  });

  it('backs off exponentially with full jitter, capped', () => {
    const bounds = { initialMs: 100, maxMs: 5000 };
    expect([0, 1, 2, 3, 6, 60].map((a) => backoffDelayMs(a, bounds, () => 0.999))).toEqual([99, 199, 399, 799, 4995, 4995]);
    expect(backoffDelayMs(3, bounds, () => 0)).toBe(0);
    expect(backoffDelayMs(3, bounds, () => 0.5)).toBe(400);
  });

  it('parses peer addresses', () => {
    expect(peerUrl('127.0.0.1:7000')).toBe('ws://127.0.0.1:7000/raft');
    expect(peerUrl('[::1]:7000')).toBe('ws://[::1]:7000/raft');
    for (const bad of ['host', 'host:0', 'host:70000', ':80', 'a b:1']) expect(() => peerUrl(bad)).toThrow(TransportConfigError);
  });
});

describe('cluster ids', () => {
  const A = 'a'.repeat(32);
  const B = 'b'.repeat(32);

  it('refuses a peer founded as another cluster, naming both ids', () => {
    const r = refusal(hello({ clusterId: B }), check({ clusterId: A }));
    expect(r.code).toBe(CloseCode.Forbidden);
    expect(r.reason).toContain(A);
    expect(r.reason).toContain(B);
  });

  it('accepts the same id, and a side that has none yet (a node waiting to join)', () => {
    expect(verifyHelloHeader(hello({ clusterId: A }), check({ clusterId: A })).ok).toBe(true);
    expect(verifyHelloHeader(hello({ clusterId: null }), check({ clusterId: A })).ok).toBe(true);
    expect(verifyHelloHeader(hello({ clusterId: A }), check({ clusterId: null })).ok).toBe(true);
  });

  it('covers the cluster id with the MAC: changing it breaks the proof', () => {
    const raw = hello({ clusterId: A });
    const h = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Record<string, unknown>;
    h.cluster = B;
    const forged = Buffer.from(JSON.stringify(h)).toString('base64url');
    expect(refusal(forged, check({ clusterId: B })).code).toBe(CloseCode.Unauthorized);
  });
});
