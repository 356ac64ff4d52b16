// The watch hub over the real state machine (memory backend): ordering, the catch-up path,
// compaction, limits, the memory bound and the no-leader rule; and the push streams over it
// (watch-stream.ts): credit flow control, the byte bound, limits, cancellation.
import { BusyError, CompactedError, NoLeaderError, WATCH_STREAM_OUTSTANDING_BYTES_MAX, type CallContext, type WatchArgs, type WatchResult, type WatchSink } from '@quorumkv/protocol';
import { type AppliedState, type Command, type KeyChange, type KvOptions, type KvStateMachine, createMemoryKvStateMachine, encodeCommand } from '@quorumkv/storage';
import { describe, expect, test } from 'vitest';
import { type WatchLimits, type WatchNodeView, type WatchQuery, type WatchSource, WatchHub } from '../src/watch-hub.js';
import { openWatchStream } from '../src/watch-stream.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

/** A state machine and the next log index to apply. */
class Machine {
  private index = 0;
  private constructor(readonly kv: KvStateMachine) {}
  static async open(options: KvOptions = {}): Promise<Machine> {
    return new Machine(await createMemoryKvStateMachine(options));
  }
  /** Applies commands, one batch per call. */
  async apply(...cmds: Command[]): Promise<void> {
    await this.kv.apply(cmds.map((c) => ({ kind: 'entry' as const, index: ++this.index, term: 1, data: encodeCommand(c) })));
  }
  put(key: string, value: string): Promise<void> {
    return this.apply({ op: 'put', key: b(key), value: b(value) });
  }
}

function nodeView(leaderlessMs = () => 0): WatchNodeView {
  return {
    clock: { nowMs: () => Date.now(), setTimer: (ms, fn) => setTimeout(fn, ms), clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) },
    leaderlessForMs: leaderlessMs,
    electionTimeoutMs: 1000,
  };
}

function ctx(ms = 5000): CallContext {
  return { signal: new AbortController().signal, deadlineMs: Date.now() + ms };
}

function args(over: Partial<WatchQuery>): WatchQuery {
  return { prefix: b(''), afterRevision: 0, limit: 1000, waitMs: 0, ...over };
}

/** One next() under an acquire() for `owner`, as a watch stream makes it. */
async function poll(hub: WatchHub, q: WatchQuery, c: CallContext, owner: object): Promise<WatchResult> {
  hub.acquire(owner);
  try {
    return await hub.next(q, c);
  } finally {
    hub.release(owner);
  }
}

/** Short text of an answer's events: "put k=v@rev" / "delete k@rev". */
function texts(r: WatchResult): string[] {
  return r.events.map((e) => (e.type === 'put' ? `put ${dec.decode(e.key)}=${dec.decode(e.value!)}@${e.modRevision}` : `delete ${dec.decode(e.key)}@${e.modRevision}`));
}

/** Follows a watch with polls of `limit` until it reaches `untilRevision`; returns every event text. Bounded. */
async function follow(hub: WatchHub, over: Partial<WatchQuery>, untilRevision: number): Promise<{ events: string[]; answers: WatchResult[] }> {
  const events: string[] = [];
  const answers: WatchResult[] = [];
  let after = over.afterRevision ?? 0;
  for (let i = 0; i < 10_000 && after < untilRevision; i++) {
    const r = await poll(hub, args({ ...over, afterRevision: after }), ctx(), {});
    answers.push(r);
    events.push(...texts(r));
    expect(r.revision).toBeGreaterThanOrEqual(after);
    after = r.revision;
  }
  return { events, answers };
}

async function setup(limits: Partial<WatchLimits> = {}, leaderlessMs?: () => number, kvOptions: KvOptions = {}): Promise<{ m: Machine; hub: WatchHub }> {
  const m = await Machine.open(kvOptions);
  const hub = new WatchHub(m.kv as never, nodeView(leaderlessMs), limits);
  return { m, hub };
}

describe('WatchHub', () => {
  test('a prefix watch sees the puts and deletes under it in revision order, with metadata and the previous value', async () => {
    const { m, hub } = await setup();
    await m.put('p/a', '1'); // rev 1
    await m.put('q/x', 'other'); // rev 2
    await m.put('p/a', '2'); // rev 3
    await m.apply({ op: 'del', key: b('p/a') }); // rev 4
    await m.put('p/b', '3'); // rev 5
    const r = await poll(hub, args({ prefix: b('p/'), prevValue: true }), ctx(), {});
    expect(texts(r)).toEqual(['put p/a=1@1', 'put p/a=2@3', 'delete p/a@4', 'put p/b=3@5']);
    expect(r.revision).toBe(5);
    const [first, second, del] = r.events;
    expect([second!.createRevision, second!.version, dec.decode(second!.prevValue!)]).toEqual([1, 2, '1']);
    expect(first!.prevValue).toBeUndefined();
    expect([del!.createRevision, del!.version, dec.decode(del!.prevValue!)]).toEqual([0, 0, '2']);
    hub.close();
  });

  test('the previous value is right for puts on keys whose record is read after the batch (no record cache)', async () => {
    // Without a cache every put on a key is computed before its record is read (a deferred key):
    // the change's previous record is filled in once the read is back.
    const { m, hub } = await setup({}, undefined, { recordCacheBytes: 0 });
    await m.put('k', 'a');
    await m.put('k', 'b');
    await m.apply({ op: 'put', key: b('k'), value: b('c') }, { op: 'put', key: b('k'), value: b('d') });
    const r = await poll(hub, args({ key: b('k'), prefix: undefined, prevValue: true }), ctx(), {});
    expect(r.events.map((e) => [dec.decode(e.value!), e.prevValue ? dec.decode(e.prevValue) : null, e.version, e.createRevision])).toEqual([
      ['a', null, 1, 1],
      ['b', 'a', 2, 1],
      ['c', 'b', 3, 1],
      ['d', 'c', 4, 1],
    ]);
    hub.close();
  });

  test('a waiting watch is answered by the next batch that touches its key, and only by that', async () => {
    const { m, hub } = await setup();
    await m.put('k', 'v0');
    const t0 = Date.now();
    const waiting = poll(hub, args({ key: b('k'), prefix: undefined, afterRevision: 1, waitMs: 3000 }), ctx(), {});
    await m.put('other', 'x'); // rev 2: not for this watcher, it keeps waiting
    await m.put('k', 'v1'); // rev 3
    const r = await waiting;
    expect(texts(r)).toEqual(['put k=v1@3']);
    expect(Date.now() - t0).toBeLessThan(1000);
    hub.close();
  });

  test('with nothing to report the answer is progress: no events, the current revision', async () => {
    const { m, hub } = await setup();
    await m.put('a', '1');
    const waiting = poll(hub, args({ key: b('k'), prefix: undefined, afterRevision: 0, waitMs: 100 }), ctx(), {});
    await m.put('b', '2');
    const r = await waiting;
    expect(r.events).toEqual([]);
    expect(r.revision).toBe(2);
    hub.close();
  });

  test('a watcher behind the window catches up from history in bounded pages: every change once, in order', async () => {
    const { m, hub } = await setup({ windowChangesMax: 10 });
    for (let i = 1; i <= 100; i++) await m.put(`k${i % 7}`, `v${i}`);
    expect(hub.stats().windowChanges).toBeLessThanOrEqual(10);
    const { events, answers } = await follow(hub, { limit: 7 }, 100);
    expect(events).toEqual(Array.from({ length: 100 }, (_, j) => `put k${(j + 1) % 7}=v${j + 1}@${j + 1}`));
    expect(Math.max(...answers.map((a) => a.events.length))).toBeLessThanOrEqual(7);
    expect(hub.stats().historyReads).toBeGreaterThan(0);
    hub.close();
  });

  test('a watch that resumes below the compacted revision ends with QKV_COMPACTED; at it, it goes on', async () => {
    const { m, hub } = await setup({ windowChangesMax: 5 });
    for (let i = 1; i <= 20; i++) await m.put('k', `v${i}`);
    await m.apply({ op: 'compact', revision: 12 });
    const err = await poll(hub, args({ afterRevision: 3 }), ctx(), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompactedError);
    expect((err as CompactedError).compactedRevision).toBe(12);
    const { events } = await follow(hub, { afterRevision: 12 }, 20);
    expect(events).toEqual(Array.from({ length: 8 }, (_, j) => `put k=v${j + 13}@${j + 13}`));
    hub.close();
  });

  test('watchers over the per-connection and per-node limits are answered QKV_BUSY', async () => {
    const { hub } = await setup({ watchersPerConnectionMax: 2, watchersPerNodeMax: 3 });
    const connA = {};
    const connB = {};
    const waiting = [poll(hub, args({ waitMs: 300 }), ctx(), connA), poll(hub, args({ waitMs: 300 }), ctx(), connA)];
    await expect(poll(hub, args({ waitMs: 300 }), ctx(), connA)).rejects.toBeInstanceOf(BusyError);
    waiting.push(poll(hub, args({ waitMs: 300 }), ctx(), connB));
    await expect(poll(hub, args({ waitMs: 300 }), ctx(), {})).rejects.toBeInstanceOf(BusyError);
    expect(hub.stats().waiting).toBe(3);
    await Promise.all(waiting);
    expect(hub.stats().waiting).toBe(0);
    // Slots are given back: the connection may wait again.
    await expect(poll(hub, args({ waitMs: 0 }), ctx(), connA)).resolves.toMatchObject({ events: [] });
    hub.close();
  });

  test('the window stays within its change and byte limits however much is written', async () => {
    const { m, hub } = await setup({ windowChangesMax: 1000, windowBytesMax: 64 * 1024 });
    const value = 'x'.repeat(200);
    for (let batch = 0; batch < 100; batch++) {
      await m.apply(...Array.from({ length: 30 }, (_, i): Command => ({ op: 'put', key: b(`key/${batch}/${i}`), value: b(value) })));
      const s = hub.stats();
      expect(s.windowChanges).toBeLessThanOrEqual(1000);
      expect(s.windowBytes).toBeLessThanOrEqual(64 * 1024);
    }
    // What fell out is still served, from history.
    const { events } = await follow(hub, { prefix: b('key/0/') }, 3000);
    expect(events.length).toBe(30);
    hub.close();
  });

  test('a prefix that is a Buffer view (as decoded from a frame) reads history unchanged', async () => {
    // Buffer#slice is a view: computing the end of the prefix range once changed the prefix itself.
    const { m, hub } = await setup({ windowChangesMax: 2 });
    for (let i = 0; i < 6; i++) await m.put(`w/k/${i}`, `v${i}`);
    const frame = Buffer.from('....w/k/');
    const prefix = frame.subarray(4);
    const { events } = await follow(hub, { prefix }, 6);
    expect(events).toEqual(Array.from({ length: 6 }, (_, i) => `put w/k/${i}=v${i}@${i + 1}`));
    expect(prefix.toString()).toBe('w/k/');
    hub.close();
  });

  test('a node without a leader for longer than an election timeout ends watches with QKV_NO_LEADER', async () => {
    let leaderlessMs = 0;
    const { m, hub } = await setup({}, () => leaderlessMs);
    await m.put('k', 'v');
    await expect(poll(hub, args({}), ctx(), {})).resolves.toMatchObject({ revision: 1 });
    leaderlessMs = 1500;
    await expect(poll(hub, args({}), ctx(), {})).rejects.toBeInstanceOf(NoLeaderError);
    // A waiting watch is ended too (it re-checks at least once per election timeout).
    leaderlessMs = 0;
    const waiting = poll(hub, args({ afterRevision: 1, waitMs: 5000 }), ctx(), {});
    setTimeout(() => (leaderlessMs = 1500), 50);
    const t0 = Date.now();
    await expect(waiting).rejects.toBeInstanceOf(NoLeaderError);
    expect(Date.now() - t0).toBeLessThan(2500);
    hub.close();
  });

  test('a revision with several changes is never split across answers', async () => {
    const { m, hub } = await setup();
    // One revision with three changes, as a transaction would produce (fed as the apply path does).
    const rec = (v: string, rev: number) => ({ value: b(v), createRevision: rev, modRevision: rev, version: 1 });
    const applied = { ...m.kv.applied(), revision: 2 };
    hub.landed(
      [
        { key: b('a'), revision: 1, record: rec('1', 1), prev: null },
        { key: b('b'), revision: 2, record: rec('2', 2), prev: null },
        { key: b('c'), revision: 2, record: rec('3', 2), prev: null },
      ],
      applied,
    );
    const first = await poll(hub, args({ limit: 1 }), ctx(), {});
    expect(texts(first)).toEqual(['put a=1@1']);
    const second = await poll(hub, args({ limit: 1, afterRevision: first.revision }), ctx(), {});
    expect(texts(second)).toEqual(['put b=2@2', 'put c=3@2']);
    hub.close();
  });

  test('after a state reset (snapshot install) a watcher in step reads history up to the new state', async () => {
    const { m, hub } = await setup();
    await m.put('k', 'v1');
    await m.put('k', 'v2');
    hub.reset(m.kv.applied());
    const r = await poll(hub, args({}), ctx(), {});
    expect(texts(r)).toEqual(['put k=v1@1', 'put k=v2@2']);
    expect(hub.stats().historyReads).toBe(1);
    hub.close();
  });
});

/** A sink that records what a stream pushed and how it ended. */
function recorder(): { sink: WatchSink; frames: WatchResult[]; ended: unknown[] } {
  const frames: WatchResult[] = [];
  const ended: unknown[] = [];
  return { sink: { push: (r) => frames.push(r), end: (e) => ended.push(e) }, frames, ended };
}

function streamArgs(over: Partial<WatchArgs>): WatchArgs {
  return { prefix: b(''), limit: 1000, progressMs: 5000, window: 4, ...over };
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('watch streams (push)', () => {
  test('a stream pushes its start at once, then every batch as it lands with no new request, then progress', async () => {
    const { m, hub } = await setup();
    await m.put('a', '1');
    const rec = recorder();
    const h = openWatchStream(hub, streamArgs({ progressMs: 50 }), {}, rec.sink);
    await until(() => rec.frames.length === 1);
    expect(rec.frames[0]).toMatchObject({ events: [], revision: 1 });
    h.ack(1);
    await m.put('b', '2');
    await until(() => rec.frames.length === 2);
    expect(texts(rec.frames[1] as WatchResult)).toEqual(['put b=2@2']);
    h.ack(1);
    await until(() => rec.frames.length === 3); // nothing happens: progress after progressMs
    expect(rec.frames[2]).toMatchObject({ events: [], revision: 2 });
    h.cancel();
    hub.close();
  });

  test('without acks a stream sends at most its window, then catches up from history in order once acked', async () => {
    const { m, hub } = await setup({ windowChangesMax: 5 });
    const rec = recorder();
    const h = openWatchStream(hub, streamArgs({ afterRevision: 0, window: 2, limit: 3 }), {}, rec.sink);
    for (let i = 1; i <= 40; i++) await m.put(`k${i}`, `v${i}`);
    await new Promise((r) => setTimeout(r, 30));
    expect(rec.frames.length).toBe(2); // the window: nothing more is sent or held
    const readsBefore = hub.stats().historyReads;
    // Ack as the frames come, until everything is delivered.
    for (let acked = 0; acked < 1000 && rec.frames.at(-1)?.revision !== 40; ) {
      if (acked < rec.frames.length) h.ack(rec.frames.length - acked), (acked = rec.frames.length);
      await new Promise((r) => setTimeout(r, 1));
    }
    const events = rec.frames.flatMap(texts);
    expect(events).toEqual(Array.from({ length: 40 }, (_, j) => `put k${j + 1}=v${j + 1}@${j + 1}`));
    expect(hub.stats().historyReads).toBeGreaterThan(readsBefore); // it fell out of the 5-change window
    h.cancel();
    hub.close();
  });

  test('unacknowledged bytes are bounded too: big batches stop the stream before the window does', async () => {
    const { m, hub } = await setup();
    const rec = recorder();
    openWatchStream(hub, streamArgs({ afterRevision: 0, window: 64, limit: 1 }), {}, rec.sink);
    const big = 'x'.repeat(100 * 1024);
    for (let i = 1; i <= 10; i++) await m.put(`k${i}`, big);
    await new Promise((r) => setTimeout(r, 30));
    const sent = rec.frames.reduce((n, f) => n + f.events.reduce((k, e) => k + (e.value?.length ?? 0), 0), 0);
    expect(sent).toBeLessThan(WATCH_STREAM_OUTSTANDING_BYTES_MAX + big.length + 1);
    expect(rec.frames.length).toBeLessThan(10);
    hub.close();
  });

  test('streams count against the watch limits while open; cancel gives the slot back and stops the pushes', async () => {
    const { m, hub } = await setup({ watchersPerConnectionMax: 1, watchersPerNodeMax: 2 });
    const conn = {};
    const rec = recorder();
    const h = openWatchStream(hub, streamArgs({}), conn, rec.sink);
    expect(() => openWatchStream(hub, streamArgs({}), conn, recorder().sink)).toThrow(BusyError);
    const other = openWatchStream(hub, streamArgs({}), {}, recorder().sink);
    expect(() => openWatchStream(hub, streamArgs({}), {}, recorder().sink)).toThrow(BusyError);
    expect(hub.stats().waiting).toBe(2);
    await until(() => rec.frames.length === 1);
    h.ack(1);
    h.cancel();
    other.cancel();
    await until(() => hub.stats().waiting === 0);
    await m.put('k', 'v');
    await new Promise((r) => setTimeout(r, 20));
    expect(rec.frames.length).toBe(1);
    expect(rec.ended).toEqual([]);
    openWatchStream(hub, streamArgs({}), conn, recorder().sink).cancel(); // the slot is free again
    hub.close();
  });

  test('a stream opened below the compacted revision ends with QKV_COMPACTED and releases its slot', async () => {
    const { m, hub } = await setup();
    for (let i = 1; i <= 5; i++) await m.put('k', `v${i}`);
    await m.apply({ op: 'compact', revision: 4 });
    const rec = recorder();
    openWatchStream(hub, streamArgs({ afterRevision: 1 }), {}, rec.sink);
    await until(() => rec.ended.length === 1);
    expect(rec.ended[0]).toBeInstanceOf(CompactedError);
    expect(rec.frames).toEqual([]);
    await until(() => hub.stats().waiting === 0);
    hub.close();
  });
});

describe('window answers shared between watchers', () => {
  test('watchers that ask the same get one answer (one events array); other questions get their own, right', async () => {
    const { m, hub } = await setup();
    await m.put('a/1', 'x');
    await m.put('b/1', 'y');
    const same = await Promise.all([0, 1, 2].map(() => poll(hub, args({ prefix: b('a/'), afterRevision: 0 }), ctx(), {})));
    expect(texts(same[0] as WatchResult)).toEqual(['put a/1=x@1']);
    expect(same[1]?.events).toBe(same[0]?.events);
    expect(same[2]?.events).toBe(same[0]?.events);
    const other = await poll(hub, args({ prefix: b('b/'), afterRevision: 0 }), ctx(), {});
    expect(texts(other)).toEqual(['put b/1=y@2']);
    const withPrev = await poll(hub, args({ prefix: b('a/'), afterRevision: 0, prevValue: true }), ctx(), {});
    expect(withPrev.events).not.toBe(same[0]?.events);
    await m.put('a/1', 'z'); // a new batch: answers are computed afresh
    const after = await poll(hub, args({ prefix: b('a/'), afterRevision: 0 }), ctx(), {});
    expect(texts(after)).toEqual(['put a/1=x@1', 'put a/1=z@3']);
    hub.close();
  });
});

describe('fed at compute', () => {
  /** A source that reports nothing by itself: the test calls computed/landed as a store would. */
  function bareSource(): WatchSource {
    return {
      applied: () => ({ index: 0, revision: 0, compactedRevision: 0 }) as AppliedState,
      changes: async () => ({ changes: [], throughRevision: 0 }),
      listen: () => () => undefined,
    };
  }
  const change = (rev: number): KeyChange => ({ key: b(`k${rev}`), revision: rev, record: { value: b('v'), createRevision: rev, modRevision: rev, version: 1 }, prev: undefined }) as unknown as KeyChange;
  const state = (rev: number) => ({ index: rev, revision: rev, compactedRevision: 0 }) as AppliedState;

  test('a waiting watcher hears a batch when it is computed, before it lands', async () => {
    const hub = new WatchHub(bareSource(), nodeView());
    const waiting = poll(hub, args({ afterRevision: 0, waitMs: 3000 }), ctx(), {});
    hub.computed([change(1)], state(1));
    const r = await waiting;
    expect(r.events.map((e) => e.modRevision)).toEqual([1]);
    hub.landed([change(1)], state(1)); // landing reports nothing twice
    expect(hub.stats().windowChanges).toBe(1);
    hub.close();
  });

  test('changes computed but not landed stay in the window over its limit; they leave once landed', async () => {
    const hub = new WatchHub(bareSource(), nodeView(), { windowChangesMax: 2 });
    for (let rev = 1; rev <= 5; rev++) hub.computed([change(rev)], state(rev));
    expect(hub.stats().windowChanges).toBe(5); // history does not reach them yet
    const r = await poll(hub, args({ afterRevision: 0 }), ctx(), {});
    expect(r.events.map((e) => e.modRevision)).toEqual([1, 2, 3, 4, 5]);
    hub.landed([change(1), change(2), change(3), change(4), change(5)], state(5));
    expect(hub.stats().windowChanges).toBe(2);
    hub.close();
  });
});
