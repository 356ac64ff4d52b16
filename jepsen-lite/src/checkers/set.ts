// The set workload's checker: every acknowledged add must be in every final read, no final
// read may hold an element nobody tried to add, and no add that failed (its error said "not
// applied") may be in one: a failed add that is present is an error that lied.
//
// History shape: `add` with value = the element (unique per op); the final reads are `read`
// ops whose ok value is the array of all elements a node holds, invoked after the heal.

import type { CheckResult } from '../checker.js';
import type { OpPair } from '../history.js';
import { outcomeOf } from '../history.js';

/** Evidence of {@link checkSet}. */
export interface SetEvidence {
  attemptedCount: number;
  acknowledgedCount: number;
  finalReads: number;
  /** Acknowledged adds missing from at least one final read, with the nodes that lack them. */
  lost: { element: unknown; missingOn: string[] }[];
  /** Elements in a final read that no add ever tried to write. */
  unexpected: { element: unknown; seenOn: string[] }[];
  /** Adds recorded `fail` (their error said "not applied") whose element is in a final read. */
  failedButPresent: { element: unknown; error: string | undefined; seenOn: string[] }[];
  /** `info`/unfinished adds that did show up (they happened, which is allowed). */
  recoveredCount: number;
  /** Elements present on some final read but not all (nodes disagree). */
  divergentCount: number;
}

/** Options of {@link checkSet}. */
export interface SetOptions {
  /** Reads invoked at or after this time (ns) are final reads. Default: every ok read. */
  finalReadsFromNs?: number;
}

/**
 * Judges a set history. Invalid when an acknowledged add is lost, an unexpected element appears
 * or a failed add appears; unknown when there is no ok final read to judge by. `info` adds
 * (indeterminate) may or may not appear.
 */
export function checkSet(pairs: readonly OpPair[], options: SetOptions = {}): CheckResult<SetEvidence> {
  const attempted = new Map<string, unknown>();
  const acknowledged = new Map<string, unknown>();
  const unsure = new Set<string>();
  const failed = new Map<string, string | undefined>();
  const reads: { node: string; elements: Set<string> }[] = [];
  for (const pair of pairs) {
    const outcome = outcomeOf(pair);
    if (pair.invoke.f === 'add') {
      const k = JSON.stringify(pair.invoke.value);
      attempted.set(k, pair.invoke.value);
      if (outcome === 'ok') acknowledged.set(k, pair.invoke.value);
      if (outcome === 'info') unsure.add(k);
      if (outcome === 'fail') failed.set(k, pair.complete?.error);
    } else if (pair.invoke.f === 'read' && outcome === 'ok' && pair.invoke.time >= (options.finalReadsFromNs ?? 0)) {
      const v = pair.complete!.value;
      const elements = Array.isArray(v) ? v : [];
      reads.push({ node: pair.invoke.node ?? `process ${pair.invoke.process}`, elements: new Set(elements.map((x) => JSON.stringify(x))) });
    }
  }
  const evidence: SetEvidence = {
    attemptedCount: attempted.size,
    acknowledgedCount: acknowledged.size,
    finalReads: reads.length,
    lost: [],
    unexpected: [],
    failedButPresent: [],
    recoveredCount: 0,
    divergentCount: 0,
  };
  if (reads.length === 0) return { valid: 'unknown', evidence };
  for (const [k, element] of acknowledged) {
    const missingOn = reads.filter((r) => !r.elements.has(k)).map((r) => r.node);
    if (missingOn.length > 0) evidence.lost.push({ element, missingOn });
  }
  const seen = new Map<string, string[]>();
  for (const r of reads) for (const k of r.elements) seen.set(k, [...(seen.get(k) ?? []), r.node]);
  for (const [k, nodes] of seen) {
    if (!attempted.has(k)) evidence.unexpected.push({ element: JSON.parse(k) as unknown, seenOn: nodes });
    if (failed.has(k)) evidence.failedButPresent.push({ element: JSON.parse(k) as unknown, error: failed.get(k), seenOn: nodes });
    if (unsure.has(k)) evidence.recoveredCount++;
    if (nodes.length < reads.length) evidence.divergentCount++;
  }
  return { valid: evidence.lost.length === 0 && evidence.unexpected.length === 0 && evidence.failedButPresent.length === 0, evidence };
}
