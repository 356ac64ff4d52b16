// Committed-log agreement: every node's running hash of applied entries must agree with every
// other node's at every index both reported, a node's own hash at an index must never change,
// and after healing the state hashes of nodes at the same applied index must be equal.

import type { CheckResult } from '../checker.js';

/** A node's running hash of its applied entries at `appliedIndex` (`time` in ns). */
export interface AppliedHashSample {
  node: string;
  time: number;
  appliedIndex: number;
  appliedHash: string;
}

/** A node's final report after the heal. */
export interface FinalNodeState {
  node: string;
  appliedIndex: number;
  appliedHash: string;
  /** Hash of the key-value state at exactly `appliedIndex`; null when none could be taken there. */
  stateHash: string | null;
}

/** Evidence of {@link checkLogAgreement}. */
export interface LogAgreementEvidence {
  samples: number;
  indexesCompared: number;
  /** Indexes where two nodes (or one node at two times) reported different hashes. */
  conflicts: { index: number; hashes: { node: string; hash: string; time: number | null }[] }[];
  finalAppliedIndex: Record<string, number>;
  /** Highest index every final node reached (the common prefix). */
  commonPrefixIndex: number | null;
  stateHashesMatch: boolean | null;
}

/**
 * Checks agreement. Invalid on any conflicting hash or differing state hashes at equal applied
 * indexes; unknown when the final states are missing, did not converge to one applied index, or
 * some node's state hash could not be taken at its final applied index.
 */
export function checkLogAgreement(samples: readonly AppliedHashSample[], finals: readonly FinalNodeState[]): CheckResult<LogAgreementEvidence> {
  const byIndex = new Map<number, { node: string; hash: string; time: number | null }[]>();
  const add = (index: number, node: string, hash: string, time: number | null): void => {
    let l = byIndex.get(index);
    if (l === undefined) byIndex.set(index, (l = []));
    l.push({ node, hash, time });
  };
  for (const s of samples) add(s.appliedIndex, s.node, s.appliedHash, s.time);
  for (const f of finals) add(f.appliedIndex, f.node, f.appliedHash, null);
  const evidence: LogAgreementEvidence = {
    samples: samples.length,
    indexesCompared: 0,
    conflicts: [],
    finalAppliedIndex: Object.fromEntries(finals.map((f) => [f.node, f.appliedIndex])),
    commonPrefixIndex: finals.length === 0 ? null : Math.min(...finals.map((f) => f.appliedIndex)),
    stateHashesMatch: null,
  };
  for (const [index, list] of [...byIndex.entries()].sort((a, b) => a[0] - b[0])) {
    if (list.length < 2) continue;
    evidence.indexesCompared++;
    if (new Set(list.map((x) => x.hash)).size > 1) evidence.conflicts.push({ index, hashes: list });
  }
  const converged = finals.length > 0 && new Set(finals.map((f) => f.appliedIndex)).size === 1;
  // Nodes at the same applied index must hold the same state, converged or not. Only state
  // hashes are compared with each other (never with an applied hash: those hash the log).
  const hashed = finals.filter((f): f is FinalNodeState & { stateHash: string } => f.stateHash !== null);
  const stateByIndex = new Map<number, Set<string>>();
  for (const f of hashed) stateByIndex.set(f.appliedIndex, (stateByIndex.get(f.appliedIndex) ?? new Set()).add(f.stateHash));
  if (hashed.length > 1) evidence.stateHashesMatch = [...stateByIndex.values()].every((s) => s.size === 1);
  if (evidence.conflicts.length > 0 || evidence.stateHashesMatch === false) return { valid: false, evidence };
  return { valid: converged && hashed.length === finals.length && evidence.stateHashesMatch === true ? true : 'unknown', evidence };
}
