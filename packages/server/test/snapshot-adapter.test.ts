// The production snapshot adapter (src/snapshots.ts) with nothing real around it: two in-memory
// node stores, an in-memory socket pair for the snapshot channel and a ManualClock. The whole
// transfer — a consistent read of one store, rate-limited in simulated time, staged and installed
// atomically into the other — runs the code production runs, which is what the whole-node
// simulation will build on.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { MessageType, type Message } from '@quorumkv/raft';
import { encodeCommand, openMemoryNodeStore, type NodeStore } from '@quorumkv/storage';
import { Prng } from '@quorumkv/testkit';
import type { Logger } from '../src/logger.js';
import { SnapshotManager, type SnapshotHost, type SnapshotSocket } from '../src/snapshots.js';
import { ManualClock } from '../src/world.js';

/** One end of an in-memory connection: what one end sends, the other receives on a later turn. */
class MemSocket extends EventEmitter implements SnapshotSocket {
  peer: MemSocket | undefined;
  open = true;
  sentBytes = 0;

  send(data: Uint8Array): void {
    if (!this.open) return;
    this.sentBytes += data.length;
    const copy = Buffer.from(data);
    setImmediate(() => this.peer?.open && this.peer.emit('message', copy));
  }

  close(): void {
    this.terminate();
  }

  terminate(): void {
    for (const s of [this, this.peer]) {
      if (!s?.open) continue;
      s.open = false;
      setImmediate(() => s.emit('close'));
    }
  }
}

const quiet = { debug: () => undefined, info: () => undefined, warn: (f: unknown, m: string) => process.env.DBG && console.log(m, f), error: (f: unknown, m: string) => process.env.DBG && console.log(m, f) } as unknown as Logger;
const counter = () => ({ inc: () => undefined, observe: () => undefined });

function hostOf(id: string, store: NodeStore, events: string[]): SnapshotHost & { delivered: Message[] } {
  const delivered: Message[] = [];
  return {
    id,
    log: quiet,
    metrics: { snapshotsSent: counter(), snapshotBytesSent: counter(), snapshotSendSeconds: counter(), snapshotsInstalled: counter() } as unknown as SnapshotHost['metrics'],
    store,
    isLeader: () => id === 'n1',
    reportSnapshot: (peer, ok) => events.push(`report ${peer} ${ok ? 'ok' : 'failed'}`),
    stepSnapshot: (msg) => {
      delivered.push(msg);
      events.push(`deliver index=${msg.snapshot!.metadata.index}`);
    },
    pendingSnapshotIndex: () => null,
    delivered,
  };
}

/** Lets promises and setImmediate callbacks run (the stores and sockets are asynchronous, not timed). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

/** A leader n1 and a follower n2 over memory stores, a ManualClock and in-memory sockets. */
async function pairOfManagers(rateBytesPerSec: number) {
  const leaderStore = await openMemoryNodeStore(undefined, { snapshotChunkBytes: 1024 });
  const followerStore = await openMemoryNodeStore(undefined, { snapshotChunkBytes: 1024 });
  const value = new Uint8Array(500).fill(7);
  const items = Array.from({ length: 40 }, (_, i) => ({
    kind: 'entry' as const, index: i + 1, term: 1,
    data: encodeCommand({ op: 'put', key: new TextEncoder().encode(`k${String(i).padStart(3, '0')}`), value, timeMs: 1 }),
  }));
  await leaderStore.kv.apply(items);

  const clock = new ManualClock(1_000_000);
  const events: string[] = [];
  const leaderHost = hostOf('n1', leaderStore, events);
  const followerHost = hostOf('n2', followerStore, events);
  const opts = { chunkBytes: 1024, rateBytesPerSec, maxConcurrentSends: 1, clock, random: new Prng(3) };
  const follower = new SnapshotManager(followerHost, { dial: () => Promise.reject(new Error('followers do not dial')) }, opts);
  const ends: MemSocket[] = [];
  const leader = new SnapshotManager(leaderHost, {
    dial: async (peer) => {
      const a = new MemSocket();
      const b = new MemSocket();
      a.peer = b;
      b.peer = a;
      follower.acceptConnection('n1', b);
      ends.push(a);
      events.push(`dial ${peer}`);
      return a;
    },
  }, opts);
  const snap = { metadata: { index: 40, term: 1, confState: { voters: ['n1', 'n2'], learners: [] } }, data: new Uint8Array(0) };
  const want: Message = { type: MessageType.Snap, from: 'n1', to: 'n2', term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: snap };
  /** Runs turns and timers until the leader reports the transfer to the core (bounded). */
  const runUntilReport = async () => {
    for (let i = 0; i < 10_000 && !events.some((e) => e.startsWith('report')); i++) {
      await settle();
      const due = clock.nextDueMs();
      if (due !== null && !events.some((e) => e.startsWith('report'))) clock.advance(due - clock.nowMs());
    }
  };
  return { leaderStore, followerStore, value, clock, events, followerHost, follower, leader, ends, snap, want, runUntilReport };
}

describe('snapshot adapter over memory stores and a ManualClock', () => {
  it('streams a store to an empty one, rate-limited in simulated time, and installs it atomically', async () => {
    const RATE = 4096;
    const { leaderStore, followerStore, value, clock, events, followerHost, follower, leader, ends, snap, want, runUntilReport } = await pairOfManagers(RATE);
    leader.send(want);
    const start = clock.nowMs();
    await runUntilReport();
    expect(events[0]).toBe('dial n2');
    expect(events).toContain('deliver index=40');
    expect(events.at(-1)).toBe('report n2 ok');
    // Bytes on the wire over simulated time: at most one chunk of burst ahead of the rate.
    const elapsedMs = clock.nowMs() - start;
    const streamed = ends[0]!.sentBytes;
    if (process.env.DBG) console.log({ elapsedMs, streamed });
    expect(streamed).toBeGreaterThan(40 * 500);
    expect(elapsedMs).toBeGreaterThanOrEqual(((streamed - 1024 - 4096) / RATE) * 1000); // (frame overhead and end frame aside)

    await follower.install(followerHost.delivered[0]!.snapshot!);
    expect(followerStore.kv.applied()).toEqual(leaderStore.kv.applied());
    expect((await followerStore.kv.get(new TextEncoder().encode('k039')))?.value).toEqual(value);
    await expect(follower.install(snap)).rejects.toThrow(/no staged snapshot for index 40/);
    await leader.close();
    await follower.close();
  });

  it('paused: a request is held (shown as paused), a cancel reports it failed, resume sends it; a running transfer stops mid-way', async () => {
    const { clock, events, leader, follower, ends, want, runUntilReport } = await pairOfManagers(4096);
    leader.setSendsPaused(true);
    leader.send(want);
    await settle();
    clock.advance(60_000);
    await settle();
    expect(events).toEqual([]); // nothing dialled in a simulated minute
    expect(leader.status().map((t) => [t.peer, t.direction, t.state])).toEqual([['n2', 'send', 'paused']]);
    leader.cancelSends(() => false, 'removed');
    expect(events).toEqual(['report n2 failed']);
    expect(leader.status()).toEqual([]);

    events.length = 0;
    leader.send(want);
    leader.setSendsPaused(false);
    // Let it send part of the snapshot, then pause: the wire goes quiet however long we wait.
    for (let i = 0; i < 200 && (ends[0]?.sentBytes ?? 0) < 8 * 1024; i++) {
      await settle();
      const due = clock.nextDueMs();
      if (due !== null) clock.advance(due - clock.nowMs());
    }
    leader.setSendsPaused(true);
    await settle();
    const sent = ends[0]!.sentBytes;
    expect(sent).toBeGreaterThan(0);
    clock.advance(120_000);
    await settle();
    expect(ends[0]!.sentBytes).toBe(sent);
    expect(events).toEqual(['dial n2']);
    leader.setSendsPaused(false);
    await runUntilReport();
    expect(events.at(-1)).toBe('report n2 ok');
    expect(ends).toHaveLength(1); // finished on the connection it had: resumed, not restarted
    await leader.close();
    await follower.close();
  });
});
