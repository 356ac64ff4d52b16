// The bank workload and its checker against in-memory stores: an atomic store keeps every read at
// the total; a store that applies a transfer's two puts as two separate steps (visible in between)
// or that applies a retried transfer twice is caught.
import { describe, expect, it } from 'vitest';
import { checkBank } from '../src/checkers/bank.js';
import { HistoryRecorder, pairOps } from '../src/history.js';
import { createRng } from '../src/random.js';
import { runWorkload } from '../src/runner.js';
import type { KvLike, TxnKvLike } from '../src/workloads.js';
import { BANK_ACCOUNTS, BANK_INITIAL_BALANCE, BANK_PREFIX, BANK_TOTAL, BankGenerator, bankAccount, readBank } from '../src/workloads.js';

type Mode = 'atomic' | 'torn';
type Spec = Parameters<TxnKvLike['txn']>[0];

/** A store with revisions; `torn` applies a txn's puts one await apart, so a read can fall between them. */
function bankStore(seed: number, mode: Mode): KvLike & TxnKvLike {
  const rng = createRng(seed);
  const data = new Map<string, { value: string; modRevision: number }>();
  let revision = 0;
  for (let i = 0; i < BANK_ACCOUNTS; i++) data.set(bankAccount(i), { value: String(BANK_INITIAL_BALANCE), modRevision: ++revision });
  const tick = () => new Promise((r) => setTimeout(r, rng.int(0, 1)));
  const items = () => [...data.entries()].filter(([k]) => k.startsWith(BANK_PREFIX)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, v]) => ({ key, ...v }));
  return {
    async txn(spec: Spec) {
      await tick();
      const ok = (spec.compare ?? []).every((c) => (data.get(c.key)?.modRevision ?? 0) === c.value);
      if (!ok) return { succeeded: false, revision, results: [] };
      const puts = (spec.success ?? []).filter((op): op is { op: 'put'; key: string; value: string } => op.op === 'put');
      if (puts.length > 0) revision++;
      for (const p of puts) {
        data.set(p.key, { value: p.value, modRevision: revision });
        if (mode === 'torn') await tick();
      }
      const reads = (spec.success ?? []).filter((op) => op.op === 'range').map(() => ({ op: 'range', items: items() }));
      return { succeeded: true, revision, results: puts.length > 0 ? [] : reads };
    },
    get: async () => undefined,
    put: async () => ({ revision }),
    cas: async () => ({ revision }),
    async *range() {
      for (const it of items()) yield it;
    },
    close: async () => undefined,
  };
}

async function run(seed: number, mode: Mode) {
  const rec = new HistoryRecorder();
  const kv = bankStore(seed, mode);
  let done = 0;
  await runWorkload({
    concurrency: 4,
    ratePerSecond: 5000,
    generator: new BankGenerator(createRng(seed)),
    clientFor: (w) => ({ kv, node: `n${(w % 3) + 1}` }),
    recorder: rec,
    rng: createRng(seed + 1),
    shouldStop: () => done >= 300,
    onOutcome: () => void done++,
  });
  const final = rec.invoke(999, 'read', 'accounts', 'n1');
  rec.complete(final, 'ok', await readBank(kv));
  return checkBank(pairOps(rec.ops), { accounts: BANK_ACCOUNTS, total: BANK_TOTAL });
}

describe('bank workload', () => {
  it('an atomic store: every read sums to the total; transfers commit and conflict', async () => {
    const r = await run(7, 'atomic');
    expect(r.valid).toBe(true);
    expect(r.evidence.finalReads).toBe(1);
    expect(r.evidence.transfersOk).toBeGreaterThan(10);
    expect(r.evidence.transfersFailed).toBeGreaterThan(0); // concurrent transfers lost a compare
  });

  it('a store whose transfers are visible half-done is caught', async () => {
    const r = await run(7, 'torn');
    expect(r.valid).toBe(false);
    expect(r.evidence.badReads[0]?.why).toMatch(/sum to/);
  });

  it('judges reads: a missing account, a negative one, a wrong sum; no reads is unknown', () => {
    const rec = new HistoryRecorder();
    const read = (balances: unknown) => rec.complete(rec.invoke(1, 'read', 'accounts'), 'ok', { revision: 1, balances });
    read([100, 100, 100, 100, 100]);
    read([100, 100, 100, 100]);
    read([-1, 101, 100, 100, 200]);
    read([100, 100, 100, 100, 99]);
    const r = checkBank(pairOps(rec.ops), { accounts: BANK_ACCOUNTS, total: BANK_TOTAL });
    expect(r.evidence.badReads.map((b) => b.why)).toEqual(['4 accounts, expected 5', 'account 0 is negative (-1)', 'the accounts sum to 499, expected 500']);
    expect(checkBank([], { accounts: BANK_ACCOUNTS, total: BANK_TOTAL }).valid).toBe('unknown');
  });
});
