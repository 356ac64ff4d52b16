// The admission primitives (src/admission.ts): the byte budget's take/wait/give, connection limits
// per node and per address, address keys, the per-address session quota's sliding window, and the
// range budget as NodeKvService uses it.
import { describe, expect, it } from 'vitest';
import { ArrivalMeter, BUDGET_WAITERS_MAX, ByteBudget, ConnectionLimiter, SessionQuota, WS_FRAME_HEADER_BYTES_MAX, addressKey } from '../src/admission.js';
import { NodeKvService, RANGE_BUSY_RETRY_AFTER_MS } from '../src/kv-service.js';
import { createRealClock } from '../src/world.js';

describe('ByteBudget', () => {
  it('takes what fits, refuses what does not, and gives back', () => {
    const b = new ByteBudget('test', 100);
    expect(b.tryTake(60)).toBe(true);
    expect(b.tryTake(41)).toBe(false);
    expect(b.tryTake(40)).toBe(true);
    expect(b.usedBytes).toBe(100);
    b.give(100);
    expect(b.usedBytes).toBe(0);
    expect(() => b.give(1)).toThrow(/more bytes than were taken/);
  });

  it('take() waits in order for bytes given back, and fails with QKV_BUSY and the retry hint when they do not come in time', async () => {
    const b = new ByteBudget('range bytes in flight', 100);
    b.tryTake(100);
    const order: string[] = [];
    const first = b.take(50, 1000, 7).then(() => order.push('first'));
    const second = b.take(50, 1000, 7).then(() => order.push('second'));
    const late = b.take(80, 20, 7).catch((e: unknown) => e);
    // A waiter queue is fair: tryTake does not jump it, tryTakeMore (a running holder) may.
    b.give(40);
    expect(b.tryTake(10)).toBe(false);
    b.give(60);
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
    expect(await late).toMatchObject({ code: 'QKV_BUSY', retryAfterMs: 7, message: expect.stringMatching(/range bytes in flight/) });
    expect(b.usedBytes).toBe(100);
    expect(b.tryTakeMore(1)).toBe(false);
    b.give(100);
    expect(b.tryTakeMore(100)).toBe(true);
  });

  it('refuses at once what can never fit, what may not wait, and past the waiter limit', async () => {
    const b = new ByteBudget('test', 100);
    await expect(b.take(101, 1000, 1)).rejects.toMatchObject({ code: 'QKV_BUSY' });
    b.tryTake(100);
    await expect(b.take(1, 0, 1)).rejects.toMatchObject({ code: 'QKV_BUSY' });
    const waiting = Array.from({ length: BUDGET_WAITERS_MAX }, () => b.take(1, 50, 1).catch(() => 'gave up'));
    await expect(b.take(1, 1000, 1)).rejects.toMatchObject({ code: 'QKV_BUSY' });
    expect(new Set(await Promise.all(waiting))).toEqual(new Set(['gave up']));
  });

  it('a large waiter that gives up lets the smaller ones behind it in', async () => {
    const b = new ByteBudget('test', 100);
    b.tryTake(60);
    const big = b.take(80, 20, 1).catch(() => 'gave up');
    const small = b.take(30, 1000, 1).then(() => 'in');
    expect(await big).toBe('gave up');
    expect(await small).toBe('in');
  });
});

describe('ArrivalMeter', () => {
  /** A socket stand-in that records pause/resume. */
  const socket = () => {
    const calls: string[] = [];
    return { calls, pause: () => calls.push('pause'), resume: () => calls.push('resume') };
  };

  it('counts bytes as they arrive; a complete message moves them to its request; the header and control frames go back', () => {
    const budget = new ByteBudget('buffered request bytes', 1000);
    const sock = socket();
    const m = new ArrivalMeter(budget, sock, 1000, () => undefined);
    m.arrived(300); // part of a frame: counted before it is whole
    expect(budget.usedBytes).toBe(300);
    m.arrived(106);
    expect(m.claim(400)).toBe(400); // the request holds its payload; the header (6) goes back
    expect(budget.usedBytes).toBe(400);
    budget.give(400); // the request was answered
    m.arrived(10);
    m.control(4); // a pong with 4 bytes of payload
    expect(budget.usedBytes).toBe(0);
    m.arrived(50);
    m.close();
    expect(budget.usedBytes).toBe(0);
    expect(sock.calls).toEqual([]);
    expect(WS_FRAME_HEADER_BYTES_MAX).toBe(14);
  });

  it('past the budget it counts the bytes anyway, pauses the socket and resumes it when there is room', () => {
    const budget = new ByteBudget('buffered request bytes', 1000);
    budget.tryTake(900);
    const sock = socket();
    const m = new ArrivalMeter(budget, sock, 60_000, () => undefined);
    m.arrived(300);
    expect(budget.usedBytes).toBe(1200);
    m.arrived(100); // already paused: counted, not paused twice
    expect(sock.calls).toEqual(['pause']);
    expect(budget.usedBytes).toBe(1300);
    budget.give(400); // 900: below the limit again
    expect(sock.calls).toEqual(['pause', 'resume']);
    m.close();
    expect(budget.usedBytes).toBe(500);
  });

  it('a socket paused for stallMs is reported stalled; one that resumed in time is not', async () => {
    const budget = new ByteBudget('buffered request bytes', 100);
    const stalled: string[] = [];
    const a = new ArrivalMeter(budget, socket(), 30, () => stalled.push('a'));
    const b = new ArrivalMeter(budget, socket(), 30, () => stalled.push('b'));
    a.arrived(90);
    b.arrived(60); // over the budget: b pauses, a half-frame holds the budget
    a.arrived(20); // a pauses too: neither frame can finish
    await new Promise((r) => setTimeout(r, 60));
    expect(stalled.sort()).toEqual(['a', 'b']);
    const c = new ArrivalMeter(new ByteBudget('other', 100), socket(), 30, () => stalled.push('c'));
    c.arrived(150);
    c.close();
    await new Promise((r) => setTimeout(r, 60));
    expect(stalled).not.toContain('c');
  });
});

describe('ConnectionLimiter', () => {
  it('admits per node and per address, and a release frees exactly one place', () => {
    const l = new ConnectionLimiter({ maxConnections: 3, maxConnectionsPerAddress: 2 });
    const a1 = l.admit('10.0.0.1');
    const a2 = l.admit('::ffff:10.0.0.1');
    expect('release' in a1 && 'release' in a2).toBe(true);
    expect(l.admit('10.0.0.1')).toEqual({ refused: '10.0.0.1 has 2 connections open (limit 2 per address)' });
    const b1 = l.admit('10.0.0.2');
    expect(l.admit('10.0.0.3')).toEqual({ refused: 'the node has 3 connections open (limit 3)' });
    if (!('release' in a1) || !('release' in b1)) throw new Error('unreachable');
    a1.release();
    a1.release(); // twice is harmless
    expect(l.open).toBe(2);
    expect('release' in l.admit('10.0.0.1')).toBe(true);
    b1.release();
    expect('release' in l.admit('10.0.0.3')).toBe(true);
  });

  it('counts IPv6 addresses by their /64', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey(undefined)).toBe('?');
    const l = new ConnectionLimiter({ maxConnections: 10, maxConnectionsPerAddress: 1 });
    expect('release' in l.admit('2001:db8:1:2::1')).toBe(true);
    expect('refused' in l.admit('2001:db8:1:2::2')).toBe(true);
    expect('release' in l.admit('2001:db8:1:3::1')).toBe(true);
  });
});

describe('SessionQuota', () => {
  it('limits sessions per connection and per address within a sliding window', () => {
    let now = 1_000_000;
    const q = new SessionQuota({ maxSessionsPerConnection: 5, maxSessionsPerAddress: 2, windowMs: 1000 }, () => now);
    expect(() => q.admit('10.0.0.1', 5)).toThrow(expect.objectContaining({ code: 'QKV_QUOTA_EXCEEDED', message: expect.stringMatching(/per connection/) }));
    q.admit('10.0.0.1', 0);
    now += 500;
    q.admit('10.0.0.1', 1);
    expect(() => q.admit('10.0.0.1', 2)).toThrow(expect.objectContaining({ code: 'QKV_QUOTA_EXCEEDED', message: expect.stringMatching(/per address/) }));
    q.admit('10.0.0.2', 0); // another address has its own quota
    now += 500; // the first creation leaves the window
    q.admit('10.0.0.1', 2);
    expect(() => q.admit('10.0.0.1', 3)).toThrow(/per address/);
    now += 2000;
    q.sweep();
    q.admit('10.0.0.1', 3);
    q.admit('10.0.0.1', 4);
  });
});

describe('NodeKvService.range and the range budget', () => {
  const ROW = 100;
  /** A node stand-in: 10 rows of ROW bytes; rangePage asks admitBytes for each row after the first. */
  function fakeNode(rows = 10, gate?: Promise<void>) {
    return {
      cfg: { maxKeyBytes: 10, maxValueBytes: 100 },
      clock: createRealClock(),
      metrics: { busyRejections: { inc: () => undefined } },
      linearizableBarrier: async () => undefined,
      rangePage: async (_req: unknown, o: { limit: number; maxBytes: number; admitBytes?: (n: number) => boolean }) => {
        await gate;
        const items = [];
        for (let i = 0; i < Math.min(rows, o.limit); i++) {
          if (i > 0 && !(o.admitBytes?.(ROW) ?? true)) return { items, more: true, bytes: items.length * ROW };
          items.push({ key: new Uint8Array([i]), value: new Uint8Array(0), createRevision: 1, modRevision: 1, version: 1 });
        }
        return { items, more: rows > o.limit, bytes: items.length * ROW };
      },
    };
  }
  const args = { prefix: new Uint8Array([1]), limit: 100, consistency: 'stale' as const, maxResultBytes: 1 << 20 };
  const ctx = () => ({ signal: new AbortController().signal, deadlineMs: Date.now() + 5000 });
  // The allowance is two rows of the largest size: 2 x (10 + 100 + 64) = 348 bytes.
  const ALLOWANCE = 348;

  it('a page that cannot grow in the budget ends early with more, and every byte is given back', async () => {
    const budget = new ByteBudget('range bytes in flight', ALLOWANCE + 3 * ROW);
    const svc = new NodeKvService(fakeNode() as never, budget);
    const page = await svc.range(args, ctx());
    expect(page.items).toHaveLength(4); // the first row on the allowance, three more in the budget
    expect(page.more).toBe(true);
    expect(budget.usedBytes).toBe(0);
  });

  it('a range that cannot get its allowance waits, then gets QKV_BUSY with a retry hint', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const budget = new ByteBudget('range bytes in flight', ALLOWANCE);
    const svc = new NodeKvService(fakeNode(1, gate) as never, budget);
    const first = svc.range(args, ctx());
    await new Promise((r) => setTimeout(r, 10));
    const second = svc.range(args, ctx()); // waits for the first one's allowance
    const third = svc.range(args, { ...ctx(), deadlineMs: Date.now() + 50 }).catch((e: unknown) => e);
    expect(await third).toMatchObject({ code: 'QKV_BUSY', retryAfterMs: RANGE_BUSY_RETRY_AFTER_MS });
    open();
    expect((await first).items).toHaveLength(1);
    expect((await second).items).toHaveLength(1);
    expect(budget.usedBytes).toBe(0);
  });
});
