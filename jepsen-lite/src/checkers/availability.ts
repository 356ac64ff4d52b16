// Availability metrics (the seed metrics of issue 6): failover duration after each fault,
// error rates during and outside faults, and the share of 1-second windows with an ok write.
// It measures; it only judges when thresholds are given.

import type { CheckResult } from '../checker.js';
import type { OpPair } from '../history.js';
import { outcomeOf } from '../history.js';

/** A fault as executed: kind, label, start and heal on the history's clock (ns). */
export interface FaultWindow {
  id: string;
  kind: string;
  startNs: number;
  /** Heal time; `null` when the run ended with the fault still active. */
  endNs: number | null;
}

/** Options of {@link checkAvailability}. */
export interface AvailabilityOptions {
  /** Window length for the "windows with an ok write" share. Default 1000 ms. */
  windowMs?: number;
  /** When set, a failover longer than this (or none at all) makes the result invalid. */
  failoverMsMax?: number;
  /** When set, a smaller share of windows with an ok write makes the result invalid. */
  okWindowShareMin?: number;
  /**
   * Liveness: when true and there were faults, some write must complete `ok` after the last
   * heal (the cluster recovered), else the result is invalid. Default false.
   */
  requireRecovery?: boolean;
}

/** Error rate of ops invoked in some period. */
export interface ErrorRate {
  ops: number;
  ok: number;
  /** Fails that are answers, not unavailability (a compare-and-set whose condition did not hold). */
  answeredFail: number;
  fail: number;
  info: number;
  /** (fail + info) / ops, answered fails not counted; null when there were no ops. */
  errorRate: number | null;
}

/** Error codes of a `fail` that is a correct answer of an available cluster. */
export const ANSWERED_FAIL_CODES: ReadonlySet<string> = new Set(['QKV_CAS_FAILED']);

/** Evidence of {@link checkAvailability}. */
export interface AvailabilityEvidence {
  /** Per fault: ms from its start to the completion of the first ok write invoked after it (null = none). */
  failovers: { id: string; kind: string; failoverMs: number | null }[];
  failoverMsMax: number | null;
  duringFaults: ErrorRate;
  outsideFaults: ErrorRate;
  windows: number;
  windowsWithOkWrite: number;
  okWindowShare: number | null;
  /** Whether an ok write completed after the last heal (null: no faults, or a fault never healed). */
  recoveredAfterLastHeal: boolean | null;
  violations: string[];
}

const WRITE_FS: ReadonlySet<string> = new Set(['write', 'cas', 'add', 'delete', 'transfer']);
const NS_PER_MS = 1e6;

/** Computes availability metrics from op pairs and fault windows. */
export function checkAvailability(pairs: readonly OpPair[], faults: readonly FaultWindow[], options: AvailabilityOptions = {}): CheckResult<AvailabilityEvidence> {
  const okWrites = pairs.filter((p) => WRITE_FS.has(p.invoke.f) && outcomeOf(p) === 'ok');
  const okWriteTimes = okWrites.map((p) => p.complete!.time).sort((a, b) => a - b);
  const firstOkAfter = firstOkWriteInvokedAfter(okWrites);
  const failovers = faults.map((f) => {
    const t = firstOkAfter(f.startNs);
    return { id: f.id, kind: f.kind, failoverMs: t === undefined ? null : (t - f.startNs) / NS_PER_MS };
  });
  const known = failovers.map((f) => f.failoverMs).filter((x): x is number => x !== null);
  const endNs = pairs.reduce((m, p) => Math.max(m, p.complete?.time ?? p.invoke.time), 0);
  const inFault = (t: number): boolean => faults.some((f) => t >= f.startNs && t < (f.endNs ?? endNs + 1));
  const during = emptyRate();
  const outside = emptyRate();
  for (const p of pairs) tally(inFault(p.invoke.time) ? during : outside, p);
  const w = windowShare(pairs, okWriteTimes, (options.windowMs ?? 1000) * NS_PER_MS);
  const evidence: AvailabilityEvidence = {
    failovers,
    failoverMsMax: known.length > 0 ? known.reduce((a, b) => Math.max(a, b)) : null,
    duringFaults: finishRate(during),
    outsideFaults: finishRate(outside),
    windows: w.windows,
    windowsWithOkWrite: w.withOk,
    okWindowShare: w.windows > 0 ? w.withOk / w.windows : null,
    recoveredAfterLastHeal: recovered(faults, firstOkAfter),
    violations: [],
  };
  if (pairs.length === 0) return { valid: 'unknown', evidence };
  if (options.failoverMsMax !== undefined) {
    for (const f of failovers) {
      if (f.failoverMs === null || f.failoverMs > options.failoverMsMax) evidence.violations.push(`fault ${f.id} (${f.kind}): failover ${f.failoverMs ?? 'never'} ms > ${options.failoverMsMax} ms`);
    }
  }
  if (options.okWindowShareMin !== undefined && (evidence.okWindowShare ?? 0) < options.okWindowShareMin) {
    evidence.violations.push(`share of windows with an ok write ${evidence.okWindowShare ?? 0} < ${options.okWindowShareMin}`);
  }
  if (options.requireRecovery === true && evidence.recoveredAfterLastHeal === false) {
    evidence.violations.push('no write completed ok after the last heal: the cluster did not recover');
  }
  return { valid: evidence.violations.length === 0, evidence };
}

function recovered(faults: readonly FaultWindow[], firstOkAfter: (t: number) => number | undefined): boolean | null {
  if (faults.length === 0 || faults.some((f) => f.endNs === null)) return null;
  const lastHeal = faults.reduce((m, f) => Math.max(m, f.endNs!), 0);
  return firstOkAfter(lastHeal) !== undefined;
}

/**
 * For a time t: the earliest completion of an ok write *invoked* at or after t (a write already
 * in flight when a fault starts proves nothing about availability under it).
 */
function firstOkWriteInvokedAfter(okWrites: readonly OpPair[]): (t: number) => number | undefined {
  const byInvoke = okWrites.slice().sort((a, b) => a.invoke.time - b.invoke.time);
  const invokeTimes = byInvoke.map((p) => p.invoke.time);
  const suffixMinCompletion = new Array<number>(byInvoke.length);
  let m = Infinity;
  for (let i = byInvoke.length - 1; i >= 0; i--) suffixMinCompletion[i] = m = Math.min(m, byInvoke[i]!.complete!.time);
  return (t) => {
    const i = lowerBound(invokeTimes, t);
    return i < byInvoke.length ? suffixMinCompletion[i] : undefined;
  };
}

/** Index of the first element >= t in an ascending array. */
function lowerBound(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function emptyRate(): ErrorRate {
  return { ops: 0, ok: 0, answeredFail: 0, fail: 0, info: 0, errorRate: null };
}

function tally(r: ErrorRate, p: OpPair): void {
  const outcome = outcomeOf(p);
  r.ops++;
  if (outcome === 'fail' && ANSWERED_FAIL_CODES.has(p.complete?.error ?? '')) r.answeredFail++;
  else r[outcome]++;
}

function finishRate(r: ErrorRate): ErrorRate {
  return { ...r, errorRate: r.ops > 0 ? (r.fail + r.info) / r.ops : null };
}

/** Windows from the first invocation to the last event; a window counts when an ok write completed in it. */
function windowShare(pairs: readonly OpPair[], okWriteTimes: readonly number[], windowNs: number): { windows: number; withOk: number } {
  if (pairs.length === 0) return { windows: 0, withOk: 0 };
  const start = pairs.reduce((m, p) => Math.min(m, p.invoke.time), Infinity);
  const end = pairs.reduce((m, p) => Math.max(m, p.complete?.time ?? p.invoke.time), start);
  const windows = Math.max(1, Math.ceil((end - start) / windowNs));
  const hit = new Set<number>();
  for (const t of okWriteTimes) hit.add(Math.min(windows - 1, Math.floor((t - start) / windowNs)));
  return { windows, withOk: hit.size };
}
