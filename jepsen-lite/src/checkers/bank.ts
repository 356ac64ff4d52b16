// The bank workload's checker: money is neither created nor destroyed. Every ok read of all
// accounts — the workload's txn reads (one revision each) and the final per-node reads after the
// heal — must list every account, none negative, summing to the constant. A transfer applied
// twice, half of one applied, or a read that mixes revisions would break the sum.
//
// History shape: `read` with value 'accounts' completes with {revision, balances} (workload
// reads) or, for final reads, with the balances array; `transfer` completes with
// {from, to, amount, revision} when it ran.

import type { CheckResult } from '../checker.js';
import type { OpPair } from '../history.js';
import { outcomeOf } from '../history.js';

/** Evidence of {@link checkBank}. */
export interface BankEvidence {
  readsChecked: number;
  finalReads: number;
  transfersOk: number;
  transfersFailed: number;
  transfersUnsure: number;
  /** Reads whose balances break the rules (first 20), with why. */
  badReads: { index: number; node?: string; balances: unknown; why: string }[];
}

/** Options of {@link checkBank}. */
export interface BankOptions {
  accounts: number;
  total: number;
}

/** Most bad reads kept as evidence. */
const BAD_READS_KEPT = 20;

/** Why a list of balances is wrong, or undefined when it is right. */
function badBalances(balances: unknown, o: BankOptions): string | undefined {
  if (!Array.isArray(balances)) return 'no balances';
  if (balances.length !== o.accounts) return `${balances.length} accounts, expected ${o.accounts}`;
  let sum = 0;
  for (const [i, b] of balances.entries()) {
    if (typeof b !== 'number' || !Number.isInteger(b)) return `account ${i} has no integer balance`;
    if (b < 0) return `account ${i} is negative (${b})`;
    sum += b;
  }
  return sum === o.total ? undefined : `the accounts sum to ${sum}, expected ${o.total}`;
}

/** Judges a bank history: invalid on any bad read; unknown when no read completed. */
export function checkBank(pairs: readonly OpPair[], options: BankOptions): CheckResult<BankEvidence> {
  const evidence: BankEvidence = { readsChecked: 0, finalReads: 0, transfersOk: 0, transfersFailed: 0, transfersUnsure: 0, badReads: [] };
  for (const pair of pairs) {
    const outcome = outcomeOf(pair);
    if (pair.invoke.f === 'transfer') {
      if (outcome === 'ok') evidence.transfersOk++;
      else if (outcome === 'fail') evidence.transfersFailed++;
      else evidence.transfersUnsure++;
      continue;
    }
    if (pair.invoke.f !== 'read' || outcome !== 'ok') continue;
    const v = pair.complete!.value;
    const balances = Array.isArray(v) ? v : (v as { balances?: unknown } | null)?.balances;
    if (Array.isArray(v)) evidence.finalReads++;
    evidence.readsChecked++;
    const why = badBalances(balances, options);
    if (why !== undefined && evidence.badReads.length < BAD_READS_KEPT) {
      evidence.badReads.push({ index: pair.invoke.index, ...(pair.invoke.node === undefined ? {} : { node: pair.invoke.node }), balances, why });
    }
  }
  if (evidence.readsChecked === 0) return { valid: 'unknown', evidence };
  return { valid: evidence.badReads.length === 0, evidence };
}
