// The watch workload's checker (after Jepsen's etcd watch test). Writers put unique values on a
// small key set; several watchers, each on its own client that moves between nodes as faults come
// and go, record the changes they see from a start revision. After the heal, a reference watch
// on one node reads the committed sequence from history: the cluster's own record of every
// change at every revision from the start to the final revision.
//
// Valid when the reference is itself sound (revisions strictly increasing; every acknowledged
// write in it exactly once; nothing in it that no write tried, or that a write said was not
// applied) and every watcher's sequence equals the reference from the start revision up to where
// the watcher got: no gap, no duplicate, no reordering, no change that differs.

import type { CheckResult } from '../checker.js';
import type { OpPair } from '../history.js';
import { outcomeOf } from '../history.js';

/** One change as a watcher saw it. */
export interface WatchedChange {
  type: 'put' | 'delete';
  key: string;
  value: string | null;
  revision: number;
}

/** What one watcher saw. */
export interface WatcherLog {
  id: string;
  /** The revision it has seen everything through when it was stopped. */
  throughRevision: number;
  changes: WatchedChange[];
  /** Set when the watch ended by itself with an error (it should not). */
  error?: string;
}

/** The watch run's record (watches.json). */
export interface WatchRecord {
  prefix: string;
  startRevision: number;
  /** A revision after every write of the run: each watcher is stopped once it got there. */
  finalRevision: number;
  /** The committed sequence from startRevision through finalRevision (a watch read after the heal). */
  reference: WatchedChange[];
  referenceError?: string;
  watchers: WatcherLog[];
}

/** Evidence of {@link checkWatch}. */
export interface WatchEvidence {
  referenceChanges: number;
  watchers: { id: string; changes: number; throughRevision: number }[];
  /** Problems of the reference itself. */
  reference: string[];
  /** Each watcher's first divergence from the reference. */
  divergent: { id: string; at: number; expected: WatchedChange | null; saw: WatchedChange | null; why: string }[];
  /** Watchers that ended by themselves, or stopped short of the final revision. */
  stopped: { id: string; why: string }[];
}

/** Judges a watch run. `pairs` are the writes of the history (values `[key, v]`). */
export function checkWatch(rec: WatchRecord, pairs: readonly OpPair[]): CheckResult<WatchEvidence> {
  const evidence: WatchEvidence = {
    referenceChanges: rec.reference.length,
    watchers: rec.watchers.map((w) => ({ id: w.id, changes: w.changes.length, throughRevision: w.throughRevision })),
    reference: referenceProblems(rec, pairs),
    divergent: [],
    stopped: [],
  };
  for (const w of rec.watchers) {
    if (w.error !== undefined) evidence.stopped.push({ id: w.id, why: `ended with ${w.error}` });
    else if (w.throughRevision < rec.finalRevision) evidence.stopped.push({ id: w.id, why: `stopped at revision ${w.throughRevision}, before ${rec.finalRevision}` });
    const d = firstDivergence(w, rec.reference);
    if (d) evidence.divergent.push({ id: w.id, ...d });
  }
  const valid = evidence.reference.length === 0 && evidence.divergent.length === 0 && evidence.stopped.length === 0 && rec.referenceError === undefined;
  if (rec.referenceError !== undefined) evidence.reference.push(`the reference watch failed: ${rec.referenceError}`);
  return { valid, evidence };
}

const changeText = (c: WatchedChange): string => `${c.type} ${c.key}=${String(c.value)}@${c.revision}`;

/** Problems of the reference sequence against the writes of the history. */
function referenceProblems(rec: WatchRecord, pairs: readonly OpPair[]): string[] {
  const problems: string[] = [];
  let last = rec.startRevision - 1;
  for (const c of rec.reference) {
    if (c.revision <= last) problems.push(`reference revisions not increasing: ${changeText(c)} after revision ${last}`);
    last = c.revision;
  }
  const inReference = new Map<string, number>();
  for (const c of rec.reference) if (c.type === 'put') inReference.set(`${c.key}=${String(c.value)}`, (inReference.get(`${c.key}=${String(c.value)}`) ?? 0) + 1);
  const tried = new Map<string, 'ok' | 'fail' | 'info'>();
  for (const p of pairs) {
    if (p.invoke.f !== 'write') continue;
    const [key, v] = p.invoke.value as [string, number];
    tried.set(`${key}=${v}`, outcomeOf(p));
  }
  for (const [kv, outcome] of tried) {
    const n = inReference.get(kv) ?? 0;
    if (outcome === 'ok' && n !== 1) problems.push(`acknowledged write ${kv} is in the committed sequence ${n} times`);
    if (outcome === 'fail' && n > 0) problems.push(`write ${kv} failed as not applied, yet it is in the committed sequence`);
  }
  for (const [kv, n] of inReference) {
    if (!tried.has(kv)) problems.push(`${kv} is in the committed sequence but no write tried it`);
    else if (n > 1) problems.push(`${kv} is in the committed sequence ${n} times`);
  }
  return problems.slice(0, 20);
}

/** Where a watcher's sequence first differs from the reference (up to its throughRevision). */
function firstDivergence(w: WatcherLog, reference: readonly WatchedChange[]): { at: number; expected: WatchedChange | null; saw: WatchedChange | null; why: string } | undefined {
  const expected = reference.filter((c) => c.revision <= w.throughRevision);
  for (let i = 0; i < Math.max(expected.length, w.changes.length); i++) {
    const e = expected[i] ?? null;
    const s = w.changes[i] ?? null;
    if (e && s && changeText(e) === changeText(s)) continue;
    const why =
      s === null ? 'gap: the watcher misses this change' :
      e === null ? 'the watcher saw a change beyond the committed sequence' :
      s.revision < e.revision ? (w.changes.slice(0, i).some((x) => x.revision === s.revision) ? 'duplicate' : 'reordered or unknown change') :
      s.revision > e.revision ? 'gap: the watcher skipped this change' :
      'the change differs from the committed one';
    return { at: i, expected: e, saw: s, why };
  }
  return undefined;
}
