// Split-brain: at most one leader per term, and no write acknowledged in a superseded term.
//
// Definitions (also in README.md § "Checkers"):
// - The leaders of term T are every node that reported `role: 'leader'` with `term: T` in a
//   status poll, plus every node named as `leader` by a poll that reported `term: T`.
//   Two or more distinct leaders of one term is a violation.
// - Term T is *superseded* at time S(T) = the earliest completion time of a write acknowledged
//   in some term T' > T. A write acknowledged in term T whose *invocation* came after S(T) is a
//   violation: it was proposed after a majority had already accepted a newer leader's entry, so
//   the old leader could not have gathered a majority for it (quorums intersect). Using the
//   invocation (not the completion) keeps the check sound: an old leader may legitimately
//   answer late for an entry it committed before it was superseded.

import type { CheckResult } from '../checker.js';

/** One `/v1/status` poll as the harness recorded it (`time` in ns on the history's clock). */
export interface StatusSample {
  node: string;
  time: number;
  role: string;
  term: number;
  leader: string | null;
}

/** An acknowledged write with the term of the leader that acknowledged it. */
export interface AckedWrite {
  /** History index of the completion (for evidence). */
  index: number;
  invokeTime: number;
  completeTime: number;
  term: number;
  node?: string;
}

/** Evidence of {@link checkSplitBrain}. */
export interface SplitBrainEvidence {
  samples: number;
  termsSeen: number;
  /** Terms with more than one leader, with the first poll that named each. */
  multipleLeaders: { term: number; leaders: { node: string; time: number; reportedBy: string }[] }[];
  /** Writes acknowledged in a term that was already superseded when they were invoked. */
  staleTermWrites: { write: AckedWrite; supersededByTerm: number; supersededAtNs: number }[];
  ackedWritesWithTerm: number;
}

/** Checks status polls and term-tagged acknowledged writes. Unknown when there is no data at all. */
export function checkSplitBrain(samples: readonly StatusSample[], writes: readonly AckedWrite[]): CheckResult<SplitBrainEvidence> {
  const leaders = new Map<number, Map<string, { time: number; reportedBy: string }>>();
  const note = (term: number, node: string, time: number, reportedBy: string): void => {
    let m = leaders.get(term);
    if (m === undefined) leaders.set(term, (m = new Map()));
    const prev = m.get(node);
    if (prev === undefined || time < prev.time) m.set(node, { time, reportedBy });
  };
  for (const s of samples) {
    if (s.role === 'leader') note(s.term, s.node, s.time, s.node);
    if (s.leader !== null && s.leader !== '') note(s.term, s.leader, s.time, s.node);
  }
  const evidence: SplitBrainEvidence = {
    samples: samples.length,
    termsSeen: leaders.size,
    multipleLeaders: [],
    staleTermWrites: staleTermWrites(writes),
    ackedWritesWithTerm: writes.length,
  };
  for (const [term, m] of [...leaders.entries()].sort((a, b) => a[0] - b[0])) {
    if (m.size > 1) evidence.multipleLeaders.push({ term, leaders: [...m.entries()].map(([node, v]) => ({ node, ...v })) });
  }
  if (samples.length === 0 && writes.length === 0) return { valid: 'unknown', evidence };
  return { valid: evidence.multipleLeaders.length === 0 && evidence.staleTermWrites.length === 0, evidence };
}

function staleTermWrites(writes: readonly AckedWrite[]): SplitBrainEvidence['staleTermWrites'] {
  // For each term, the earliest ack time of any strictly newer term (suffix minimum over terms).
  const firstAck = new Map<number, number>();
  for (const w of writes) firstAck.set(w.term, Math.min(firstAck.get(w.term) ?? Infinity, w.completeTime));
  const terms = [...firstAck.keys()].sort((a, b) => b - a);
  const supersededAt = new Map<number, { at: number; by: number }>();
  let best = { at: Infinity, by: -1 };
  for (const t of terms) {
    supersededAt.set(t, best);
    const own = firstAck.get(t)!;
    if (own < best.at) best = { at: own, by: t };
  }
  const out: SplitBrainEvidence['staleTermWrites'] = [];
  for (const w of writes) {
    const s = supersededAt.get(w.term)!;
    if (w.invokeTime > s.at) out.push({ write: w, supersededByTerm: s.by, supersededAtNs: s.at });
  }
  return out;
}
