// The state machine's replicated rules as a pure function: applyBatch(view, items, rules) run
// against a fake view (plain maps, no backend, no clock), table-driven. Each case gives the state
// before the batch, the items, and the results and writes expected.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { type Command, encodeCommand } from '../src/commands.js';
import { latin1 } from '../src/codec.js';
import type { KvRecord, SessionHeader } from '../src/kv-layout.js';
import {
  type ApplyItem,
  type ApplyResult,
  type BatchWrites,
  type KvView,
  type SessionRules,
  applyBatch,
  chainHash,
  completeDeferred,
  prepareBatch,
  resultRef,
  storedResultsNeeded,
} from '../src/kv-rules.js';
import { encodeApplyResult } from '../src/msgpack-writer.js';
import { type AppliedState, initialApplied } from '../src/meta.js';
import type { Membership } from '../src/types.js';

const RULES: SessionRules = { sessionTtlMs: 1000, maxResultsPerSession: 3, maxSessions: 2, idempotencyTtlMs: 1000, maxIdempotencyKeys: 10, maxIdempotencyBytes: 1 << 20 };
const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);

/** The state before a batch, as plain data. */
interface State {
  /** Records by key (text); null = known absent; a key not listed is absent too, unless `deferred`. */
  kv?: Record<string, KvRecord | null>;
  /** Keys whose record was not read (deferred): only puts may touch them. */
  deferred?: string[];
  /** Sessions in ascending lastActiveMs order. */
  sessions?: Array<[string, SessionHeader]>;
  /** Result records of their own, by resultRef. */
  results?: Record<string, Uint8Array | null>;
  applied?: Partial<AppliedState>;
}

/** A KvView over plain maps; counts every read, and fails the test on any read it was not given. */
class FakeView implements KvView {
  readonly location = 'fake';
  /** No idempotency keys in these tests (txn-conformance.ts covers them on the real stores). */
  readonly idempotency = { get: () => undefined, count: () => 0, bytes: () => 0, byAge: () => [][Symbol.iterator]() };
  rangeRows(): never {
    throw new Error('no range transactions in these tests');
  }
  readonly applied: AppliedState;
  private readonly kv: Map<string, KvRecord | null>;
  private readonly sessionMap: Map<string, SessionHeader>;
  private readonly results: Map<string, Uint8Array | null>;
  constructor(state: State) {
    // The revision defaults to the index (as in a store migrated from format 2): the cases below
    // written before revisions had their own counter keep their numbers where no entry skips it.
    this.applied = { ...initialApplied(), revision: state.applied?.index ?? 0, ...state.applied };
    this.kv = new Map(Object.entries(state.kv ?? {}).map(([k, r]) => [latin1(b(k)), r]));
    this.deferred = new Set((state.deferred ?? []).map((k) => latin1(b(k))));
    this.sessionMap = new Map(state.sessions ?? []);
    this.results = new Map(Object.entries(state.results ?? {}));
  }
  private readonly deferred: Set<string>;
  record(k: string): KvRecord | null | undefined {
    if (this.deferred.has(k)) return undefined;
    return this.kv.get(k) ?? null;
  }
  session(id: string): SessionHeader | undefined {
    return this.sessionMap.get(id);
  }
  sessionCount(): number {
    return this.sessionMap.size;
  }
  sessionsByActivity(): Iterator<[string, SessionHeader]> {
    return this.sessionMap.entries();
  }
  storedResult(id: string, seq: number): Uint8Array | null | undefined {
    return this.results.get(resultRef(id, seq));
  }
}

type Input = Command | { membership: Membership } | { bytes: Uint8Array } | 'noop';

/** Items at indexes from `first`, term 2. */
function items(inputs: Input[], first = 1): ApplyItem[] {
  return inputs.map((x, i) => {
    const index = first + i;
    if (x === 'noop') return { kind: 'entry', index, term: 2, data: new Uint8Array(0) };
    if ('membership' in x) return { kind: 'membership', index, term: 2, data: new Uint8Array([1]), membership: x.membership };
    if ('bytes' in x) return { kind: 'entry', index, term: 2, data: x.bytes };
    return { kind: 'entry', index, term: 2, data: encodeCommand(x) };
  });
}

const session = (id: string, seq: number, ackedBelow = 1) => ({ session: { id, seq, ackedBelow } });
const rec = (value: string, createRevision: number, modRevision: number, version: number): KvRecord => ({ value: b(value), createRevision, modRevision, version });
const header = (lastActiveMs: number, seqs: number[], inline: Array<[number, ApplyResult]> = [], discardedBelow = 0): SessionHeader => ({
  lastActiveMs,
  discardedBelow,
  seqs,
  inline: seqs.map((seq) => {
    const r = inline.find(([s]) => s === seq)?.[1];
    return r ? encodeApplyResult(r) : null;
  }),
  inlineCount: inline.length,
});

/** The writes as plain data: kv by key text, sessions with their inline seqs, expired ids, result records. */
function summary(w: BatchWrites) {
  const text = new TextDecoder();
  return {
    kv: Object.fromEntries([...w.kv.values()].map(([k, r]) => [text.decode(k), r && { ...r, value: text.decode(r.value) }])),
    sessions: Object.fromEntries(
      [...w.sessions].map(([id, h]) => [id, { lastActiveMs: h.lastActiveMs, discardedBelow: h.discardedBelow, seqs: h.seqs, inline: h.seqs.filter((_seq, i) => h.inline[i] !== null), inlineCount: h.inlineCount }]),
    ),
    expired: [...w.expiredSessions].sort(),
    results: Object.fromEntries([...w.results.values()].map((r) => [`${r.id}#${r.seq}`, r.packed === null ? 'deleted' : 'written'])),
    index: w.applied.index,
    revision: w.applied.revision,
    compactedRevision: w.applied.compactedRevision,
    /** Versions in order: key@revision=value with createRevision and version, or key@revision deleted. */
    history: w.history.map((h) => (h.record ? `${text.decode(h.key)}@${h.revision}=${text.decode(h.record.value)} c${h.record.createRevision} v${h.record.version}` : `${text.decode(h.key)}@${h.revision} deleted`)),
    clockMs: w.applied.clockMs,
  };
}

interface Case {
  name: string;
  state?: State;
  inputs: Input[];
  results: unknown[];
  writes?: Partial<ReturnType<typeof summary>>;
}

const put = (key: string, value: string, extra: object = {}): Command => ({ op: 'put', key: b(key), value: b(value), ...extra });
const del = (key: string, extra: object = {}): Command => ({ op: 'del', key: b(key), ...extra });
const members: Membership = { voters: [{ id: 'n1', address: '127.0.0.1:1' }], learners: [] };

const cases: Case[] = [
  {
    name: 'put on an absent key creates it (version 1, createRevision = modRevision = index)',
    inputs: [put('a', 'x')],
    results: [{ op: 'put', revision: 1, term: 2 }],
    writes: { kv: { a: { value: 'x', createRevision: 1, modRevision: 1, version: 1 } }, index: 1 },
  },
  {
    name: 'put on an existing key keeps createRevision and counts the version up',
    state: { kv: { a: rec('old', 3, 5, 2) }, applied: { index: 9 } },
    inputs: [put('a', 'new')],
    results: [{ op: 'put', revision: 10, term: 2 }],
    writes: { kv: { a: { value: 'new', createRevision: 3, modRevision: 10, version: 3 } }, index: 10 },
  },
  {
    name: 'reads within a batch see its earlier writes',
    inputs: [put('a', '1'), put('a', '2'), del('a'), put('a', '3')],
    results: [
      { op: 'put', revision: 1, term: 2 },
      { op: 'put', revision: 2, term: 2 },
      { op: 'del', deleted: true, revision: 3, term: 2 },
      { op: 'put', revision: 4, term: 2 },
    ],
    writes: { kv: { a: { value: '3', createRevision: 4, modRevision: 4, version: 1 } } },
  },
  {
    name: 'del of an existing key deletes it; of an absent key writes nothing',
    state: { kv: { a: rec('x', 1, 1, 1) }, applied: { index: 1 } },
    inputs: [del('a'), del('b')],
    results: [
      { op: 'del', deleted: true, revision: 2, term: 2 },
      // Deleted nothing: no write, so no new revision (the answer carries the current one).
      { op: 'del', deleted: false, revision: 2, term: 2 },
    ],
    writes: { kv: { a: null }, index: 3, revision: 2 },
  },
  {
    name: 'cas: modRevision, value and absent conditions, held and not held',
    state: { kv: { a: rec('x', 1, 1, 1) }, applied: { index: 1 } },
    inputs: [
      { op: 'cas', key: b('a'), cond: { modRevision: 7 }, then: { op: 'put', value: b('no') } },
      { op: 'cas', key: b('a'), cond: { modRevision: 1 }, then: { op: 'put', value: b('y') } },
      { op: 'cas', key: b('a'), cond: { value: b('y') }, then: { op: 'del' } },
      { op: 'cas', key: b('a'), cond: { absent: true }, then: { op: 'put', value: b('z') } },
      { op: 'cas', key: b('n'), cond: { value: b('q') }, then: { op: 'put', value: b('no') } },
    ],
    results: [
      // A cas that fails writes nothing and answers the current revision.
      { op: 'cas', succeeded: false, revision: 1, term: 2, current: { key: b('a'), value: b('x'), createRevision: 1, modRevision: 1, version: 1 } },
      { op: 'cas', succeeded: true, revision: 2, term: 2 },
      { op: 'cas', succeeded: true, revision: 3, term: 2 },
      { op: 'cas', succeeded: true, revision: 4, term: 2 },
      { op: 'cas', succeeded: false, revision: 4, term: 2 },
    ],
    writes: { kv: { a: { value: 'z', createRevision: 4, modRevision: 4, version: 1 } }, index: 6, revision: 4 },
  },
  {
    name: 'the revision is the state machine\'s own: no-ops, membership changes and bad commands do not move it',
    state: { applied: { index: 10, revision: 4 } },
    inputs: ['noop', put('a', '1'), { membership: members }, { bytes: new Uint8Array([0xc1]) }, put('a', '2'), 'noop'],
    results: [{ op: 'none' }, { op: 'put', revision: 5, term: 2 }, { op: 'none' }, expect.objectContaining({ op: 'error', code: 'QKV_BAD_COMMAND' }), { op: 'put', revision: 6, term: 2 }, { op: 'none' }],
    writes: { kv: { a: { value: '2', createRevision: 5, modRevision: 6, version: 2 } }, index: 16, revision: 6 },
  },
  {
    name: 'every write leaves a version in history, in revision order; a delete a tombstone; failed cas and deletes of nothing none',
    state: { kv: { a: rec('x', 1, 1, 1) }, applied: { index: 3, revision: 1 } },
    inputs: [put('a', '2'), del('a'), del('a'), { op: 'cas', key: b('a'), cond: { absent: true }, then: { op: 'put', value: b('3') } }, { op: 'cas', key: b('a'), cond: { absent: true }, then: { op: 'put', value: b('no') } }],
    results: [
      { op: 'put', revision: 2, term: 2 },
      { op: 'del', deleted: true, revision: 3, term: 2 },
      { op: 'del', deleted: false, revision: 3, term: 2 },
      { op: 'cas', succeeded: true, revision: 4, term: 2 },
      expect.objectContaining({ op: 'cas', succeeded: false, revision: 4 }),
    ],
    writes: { history: ['a@2=2 c1 v2', 'a@3 deleted', 'a@4=3 c4 v1'], revision: 4 },
  },
  {
    name: 'compact sets the compacted revision (never lower), does not move the revision, refuses a future revision',
    state: { applied: { index: 10, revision: 8, compactedRevision: 2 } },
    inputs: [{ op: 'compact', revision: 5 }, { op: 'compact', revision: 3 }, { op: 'compact', revision: 9 }, put('a', '1')],
    results: [
      { op: 'compact', compactedRevision: 5, revision: 8 },
      { op: 'compact', compactedRevision: 5, revision: 8 },
      expect.objectContaining({ op: 'error', code: 'QKV_FUTURE_REVISION' }),
      { op: 'put', revision: 9, term: 2 },
    ],
    writes: { index: 14, revision: 9, compactedRevision: 5 },
  },
  {
    name: 'a session retry in a later batch returns its original revision although the revision moved on',
    state: { sessions: [['s', header(0, [1], [[1, { op: 'put', revision: 2, term: 1 }]])]], applied: { index: 20, revision: 9 } },
    inputs: [put('a', 'again', session('s', 1)), put('b', 'new', session('s', 2))],
    results: [
      { op: 'put', revision: 2, term: 1 },
      { op: 'put', revision: 10, term: 2 },
    ],
    writes: { kv: { b: { value: 'new', createRevision: 10, modRevision: 10, version: 1 } }, index: 22, revision: 10 },
  },
  {
    name: 'a session retry in the same batch returns the first result and applies nothing again',
    inputs: [put('a', '1', session('s', 1)), put('a', '2', session('s', 1))],
    results: [
      { op: 'put', revision: 1, term: 2 },
      { op: 'put', revision: 1, term: 2 },
    ],
    writes: { kv: { a: { value: '1', createRevision: 1, modRevision: 1, version: 1 } }, sessions: { s: { lastActiveMs: 0, discardedBelow: 1, seqs: [1], inline: [1] } } },
  },
  {
    name: 'a session retry of an earlier batch returns the stored inline result (its term), no write',
    state: { sessions: [['s', header(0, [4], [[4, { op: 'put', revision: 3, term: 1 }]])]], applied: { index: 5 } },
    inputs: [put('a', 'again', session('s', 4))],
    results: [{ op: 'put', revision: 3, term: 1 }],
    writes: { kv: {}, sessions: { s: { lastActiveMs: 0, discardedBelow: 1, seqs: [4], inline: [4] } } },
  },
  {
    name: 'a retry whose result has a record of its own reads it from the view',
    state: {
      sessions: [['s', header(0, [4])]],
      results: { [resultRef('s', 4)]: encodeApplyResult({ op: 'del', deleted: true, revision: 3, term: 1 }) },
      applied: { index: 5 },
    },
    inputs: [del('a', session('s', 4))],
    results: [{ op: 'del', deleted: true, revision: 3, term: 1 }],
  },
  {
    name: 'ackedBelow forgets results below it; a seq below discardedBelow is QKV_SESSION_EXPIRED',
    state: { sessions: [['s', header(0, [1, 2, 3], [[1, { op: 'put', revision: 1, term: 1 }], [2, { op: 'put', revision: 2, term: 1 }]])]], applied: { index: 3 } },
    inputs: [put('a', 'x', session('s', 4, 3)), put('a', 'y', session('s', 2, 2))],
    results: [
      { op: 'put', revision: 4, term: 2 },
      { op: 'error', code: 'QKV_SESSION_EXPIRED', message: 'session s: the result of seq 2 was already discarded' },
    ],
    // seq 3's result was a record of its own (not inline): still kept; seqs 1 and 2 were inline.
    writes: { sessions: { s: { lastActiveMs: 0, discardedBelow: 3, seqs: [3, 4], inline: [4] } }, results: {} },
  },
  {
    name: 'past maxResultsPerSession the lowest seq is forgotten (its own record deleted)',
    state: { sessions: [['s', header(0, [1, 2, 3], [[2, { op: 'put', revision: 2, term: 1 }], [3, { op: 'put', revision: 3, term: 1 }]])]], applied: { index: 3 } },
    inputs: [put('a', 'x', session('s', 4))],
    results: [{ op: 'put', revision: 4, term: 2 }],
    writes: { sessions: { s: { lastActiveMs: 0, discardedBelow: 2, seqs: [2, 3, 4], inline: [2, 3, 4] } }, results: { 's#1': 'deleted' } },
  },
  {
    name: 'an unknown session with ackedBelow > 1 is QKV_SESSION_EXPIRED; beyond maxSessions QKV_SESSIONS_FULL',
    state: { sessions: [['s1', header(0, [])], ['s2', header(0, [])]] },
    inputs: [put('a', 'x', session('gone', 5, 3)), put('a', 'x', session('s3', 1))],
    results: [
      { op: 'error', code: 'QKV_SESSION_EXPIRED', message: 'session gone is unknown or expired' },
      { op: 'error', code: 'QKV_SESSIONS_FULL', message: 'the session table is full (2 sessions)' },
    ],
    writes: { kv: {}, sessions: {} },
  },
  {
    name: 'sessions idle past the TTL (by command timeMs) expire, results of their own deleted; the freed slot is usable',
    state: {
      sessions: [['idle', header(100, [7, 8], [[8, { op: 'put', revision: 8, term: 1 }]])], ['busy', header(900, [])]],
      applied: { index: 9, clockMs: 950 },
    },
    inputs: [put('a', 'x', { ...session('new', 1), timeMs: 1500 }), put('b', 'y', { ...session('idle', 9, 9), timeMs: 1600 })],
    results: [
      { op: 'put', revision: 10, term: 2 },
      { op: 'error', code: 'QKV_SESSION_EXPIRED', message: 'session idle is unknown or expired' },
    ],
    writes: { expired: ['idle'], results: { 'idle#7': 'deleted' }, sessions: { new: { lastActiveMs: 1500, discardedBelow: 1, seqs: [1], inline: [1] } }, clockMs: 1600 },
  },
  {
    name: 'a session touched in the batch expires later in the same batch when the clock passes its TTL',
    state: { sessions: [['s', header(0, [])]], applied: { clockMs: 0 } },
    inputs: [put('a', 'x', { ...session('s', 1), timeMs: 10 }), put('b', 'y', { timeMs: 5000 })],
    results: [
      { op: 'put', revision: 1, term: 2 },
      { op: 'put', revision: 2, term: 2 },
    ],
    writes: { expired: ['s'], sessions: {}, clockMs: 5000 },
  },
  {
    name: 'membership changes, no-ops and undecodable commands advance the applied index',
    inputs: [{ membership: members }, 'noop', { bytes: new Uint8Array([0xc1]) }],
    results: [{ op: 'none' }, { op: 'none' }, { op: 'error', code: 'QKV_BAD_COMMAND', message: 'malformed command: unsupported version undefined' }],
    writes: { kv: {}, index: 3 },
  },
];

afterEach(() => {
  vi.restoreAllMocks();
});

describe('applyBatch (pure rules, fake view)', () => {
  for (const c of cases) {
    test(c.name, () => {
      const view = new FakeView(structuredClone(c.state ?? {}));
      const first = view.applied.index + 1;
      const { results, writes } = applyBatch(view, items(c.inputs, first), RULES);
      expect(results).toEqual(c.results);
      expect(summary(writes)).toMatchObject(c.writes ?? {});
      expect(writes.applied.index).toBe(first + c.inputs.length - 1);
    });
  }

  test('same view and items give the same results and writes; the view is left as it was; no clock, no randomness', () => {
    for (const fn of ['now'] as const) vi.spyOn(Date, fn).mockImplementation(() => expect.fail('applyBatch read the clock'));
    vi.spyOn(Math, 'random').mockImplementation(() => expect.fail('applyBatch used ambient randomness'));
    for (const c of cases) {
      const state = structuredClone(c.state ?? {}); // a fresh copy: the table's objects stay as written
      const view = new FakeView(state);
      const before = structuredClone(state.sessions ?? []);
      const batch = items(c.inputs, view.applied.index + 1);
      const a = applyBatch(view, batch, RULES);
      const again = applyBatch(view, batch, RULES); // decodes the bytes (the first call took the encoder's copy)
      expect(again, c.name).toEqual(a);
      expect(structuredClone(state.sessions ?? []), `${c.name}: the view's sessions changed`).toEqual(before);
    }
  });

  test('the applied hash chains over every item', () => {
    const view = new FakeView({});
    const batch = items([put('a', 'x'), 'noop', { membership: members }]);
    let expected: Uint8Array = view.applied.hash;
    for (const item of batch) expected = chainHash(expected, item.index, item.term, item.data);
    expect(applyBatch(view, batch, RULES).writes.applied.hash).toEqual(expected);
  });

  test('an item out of index order is a programmer error (throws), not a result', () => {
    const view = new FakeView({ applied: { index: 4 } });
    expect(() => applyBatch(view, items([put('a', 'x')], 6), RULES)).toThrow(/apply of index 6 after applied index 4/);
  });

  test('deferred keys: puts are answered with provisional fields, completeDeferred fixes them from the prior record', () => {
    const view = new FakeView({ deferred: ['a', 'n'], applied: { index: 10 } });
    const { results, writes } = applyBatch(view, items([put('a', '1'), put('n', '2'), put('a', '3')], 11), RULES);
    expect(results).toEqual([
      { op: 'put', revision: 11, term: 2 },
      { op: 'put', revision: 12, term: 2 },
      { op: 'put', revision: 13, term: 2 },
    ]);
    expect(summary(writes).kv).toEqual({
      a: { value: '3', createRevision: 11, modRevision: 13, version: 2 },
      n: { value: '2', createRevision: 12, modRevision: 12, version: 1 },
    });
    completeDeferred(writes, new Map([[latin1(b('a')), rec('old', 4, 8, 5)], [latin1(b('n')), null]]));
    expect(summary(writes).kv).toEqual({
      a: { value: '3', createRevision: 4, modRevision: 13, version: 7 },
      n: { value: '2', createRevision: 12, modRevision: 12, version: 1 },
    });
    // Every version of a deferred key is completed too, not only its latest record.
    expect(summary(writes).history).toEqual(['a@11=1 c4 v6', 'n@12=2 c12 v1', 'a@13=3 c4 v7']);
  });

  test('a del or cas on a key the view did not read is a programmer error', () => {
    const view = new FakeView({ deferred: ['a'] });
    expect(() => applyBatch(view, items([del('a')]), RULES)).toThrow(/a del on a key whose record is read after the batch/);
  });

  test('storedResultsNeeded names exactly the retries whose result has a record of its own', () => {
    const sessions = new Map([['s', header(0, [2, 3, 5], [[3, { op: 'put', revision: 3, term: 1 }]])]]);
    const batch = prepareBatch(items([put('a', 'x', session('s', 2)), put('a', 'x', session('s', 3)), put('a', 'x', session('s', 6)), put('a', 'x', session('t', 2))]));
    expect(storedResultsNeeded(batch, (id) => sessions.get(id))).toEqual([['s', 2]]);
    // Not read: the rules refuse to guess.
    const view = new FakeView({ sessions: [...sessions] });
    expect(() => applyBatch(view, items([put('a', 'x', session('s', 2))]), RULES)).toThrow(/was not read before the batch/);
  });
});

describe('kv-rules.ts stays pure', () => {
  test('no clock, timers, randomness, process or I/O modules in its source', async () => {
    const { readFileSync } = await import('node:fs');
    const source = readFileSync(new URL('../src/kv-rules.ts', import.meta.url), 'utf8');
    const rules: Array<[RegExp, string]> = [
      [/from\s+['"](?!\.\/|node:crypto['"])[^'"]+['"]/, 'imports something besides its siblings and node:crypto (hashing)'],
      [/\bDate\b|\bperformance\.now\b|\bprocess\./, 'reads the clock or touches process'],
      [/\bMath\.random\b|\brandomInt\b|\brandomBytes\b|\bgetRandomValues\b/, 'uses ambient randomness'],
      [/\bsetTimeout\b|\bsetInterval\b|\bsetImmediate\b|\bqueueMicrotask\b|\bawait\b|\basync\b/, 'waits or schedules'],
    ];
    const problems: string[] = [];
    source.split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (/^\s*\*/.test(code)) return;
      for (const [re, why] of rules) if (re.test(code)) problems.push(`kv-rules.ts:${i + 1}: ${why}: ${line.trim()}`);
    });
    expect(problems).toEqual([]);
  });
});
