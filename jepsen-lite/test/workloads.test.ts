import { describe, expect, it } from 'vitest';
import { checkLinearizable } from '../src/checkers/linearizable.js';
import { checkSet } from '../src/checkers/set.js';
import { HistoryRecorder, pairOps, parseHistory } from '../src/history.js';
import { createRng } from '../src/random.js';
import { runWorkload } from '../src/runner.js';
import type { KvLike } from '../src/workloads.js';
import { RegisterGenerator, SET_PREFIX, SetGenerator, classifyError, readSet } from '../src/workloads.js';

/**
 * An in-memory store behind a flaky network: each call takes effect atomically at one instant;
 * some requests are lost before it (QKV_TIMEOUT: not applied, as the client library reports a
 * write that reached no node undecided), some answers after it (QKV_INDETERMINATE). Histories
 * from it are linearizable by construction. The `broken` mode serves stale reads; the `lying` mode
 * answers a write lost after its effect QKV_UNAVAILABLE ("not applied"): the errors that lie.
 */
function flakyStore(seed: number, mode: 'ok' | 'broken' | 'lying' = 'ok'): KvLike {
  const broken = mode === 'broken';
  const rng = createRng(seed);
  const data = new Map<string, string>();
  const tick = () => new Promise((r) => setTimeout(r, rng.int(0, 2)));
  const error = (code: string) => Object.assign(new Error(code), { code });
  const write = async (apply: () => void) => {
    await tick();
    if (rng.chance(0.05)) throw error('QKV_TIMEOUT'); // lost before the effect
    apply();
    await tick();
    if (rng.chance(0.05)) throw error(mode === 'lying' ? 'QKV_UNAVAILABLE' : 'QKV_INDETERMINATE'); // lost after the effect
    return { revision: 1 };
  };
  return {
    async get(key) {
      await tick();
      const v = data.get(key);
      await tick();
      // The broken mode answers from a stale copy now and then, like a follower read without ReadIndex.
      if (broken && rng.chance(0.3)) return { value: '0' };
      return v === undefined ? undefined : { value: v };
    },
    put: (key, value) => write(() => data.set(key, value)),
    async cas(key, spec) {
      await tick();
      const cur = data.get(key);
      const okNow = 'ifAbsent' in spec ? cur === undefined : cur === spec.ifValue;
      if (!okNow) throw Object.assign(new Error('cas failed'), { code: 'QKV_CAS_FAILED' });
      data.set(key, spec.value);
      return { revision: 1 };
    },
    async *range({ prefix }) {
      for (const key of [...data.keys()].sort()) if (key.startsWith(prefix)) yield { key };
    },
    close: async () => undefined,
  };
}

/** Runs of a lying store of which at least one must be caught (see the test). */
const LYING_RUNS = 5;

async function run(workload: 'register' | 'set', seed: number, mode: 'ok' | 'broken' | 'lying' = 'ok') {
  const rec = new HistoryRecorder();
  const kv = flakyStore(seed, mode);
  const gen = workload === 'register' ? new RegisterGenerator(createRng(seed), { opsPerKey: 40 }) : new SetGenerator();
  let done = 0;
  await runWorkload({
    concurrency: 5,
    ratePerSecond: 5000,
    generator: gen,
    clientFor: (w) => ({ kv, node: `n${(w % 3) + 1}` }),
    recorder: rec,
    rng: createRng(seed + 1),
    shouldStop: () => done >= 300,
    onOutcome: () => void done++,
  });
  return { rec, kv };
}

describe('workloads against an in-memory store', () => {
  it('register: the recorded history parses and is linearizable; info ops get new process ids', async () => {
    const { rec } = await run('register', 3);
    const ops = parseHistory(rec.toJsonLines());
    const r = checkLinearizable(pairOps(ops));
    expect(r.valid).toBe(true);
    expect(ops.some((o) => o.type === 'info')).toBe(true);
    expect(Math.max(...ops.map((o) => o.process))).toBeGreaterThanOrEqual(5);
    expect(r.evidence.keysChecked).toBeGreaterThan(2); // keys rotate
  });

  it('register: a store serving stale reads is caught', async () => {
    const { rec } = await run('register', 4, 'broken');
    expect(checkLinearizable(pairOps(rec.ops)).valid).toBe(false);
  });

  it('register and set: indeterminate writes are recorded info, never fail; a store whose errors lie is caught', async () => {
    const honest = await run('register', 5);
    const writes = pairOps(honest.rec.ops).filter((p) => p.invoke.f !== 'read' && p.complete?.type !== 'ok');
    expect(writes.filter((p) => p.complete?.error === 'QKV_INDETERMINATE').every((p) => p.complete?.type === 'info')).toBe(true);
    expect(writes.some((p) => p.complete?.error === 'QKV_INDETERMINATE')).toBe(true);
    expect(checkLinearizable(pairOps(honest.rec.ops)).valid).toBe(true);
    // The store's delays are real timers, so which lie a run tells (and whether a later op
    // observes it) depends on the machine's timing: under load one run's lie can go unobserved.
    // Each lying store must be caught in at least one of a few runs; an honest one never is.
    let registerCaught = 0;
    for (let seed = 5; seed < 5 + LYING_RUNS && registerCaught === 0; seed++) {
      const lying = await run('register', seed, 'lying');
      if (!checkLinearizable(pairOps(lying.rec.ops)).valid) registerCaught++;
    }
    expect(registerCaught, `no lying register run of ${LYING_RUNS} was caught`).toBeGreaterThan(0);
    let setCaught = 0;
    for (let seed = 6; seed < 6 + LYING_RUNS && setCaught === 0; seed++) {
      const set = await run('set', seed, 'lying');
      const final = set.rec.invoke(999, 'read', null, 'n1');
      set.rec.complete(final, 'ok', await readSet(set.kv));
      const r = checkSet(pairOps(set.rec.ops));
      if (!r.valid && r.evidence.failedButPresent.length > 0) setCaught++;
    }
    expect(setCaught, `no lying set run of ${LYING_RUNS} was caught`).toBeGreaterThan(0);
  });

  it('set: adds then a final read; nothing lost', async () => {
    const { rec, kv } = await run('set', 5);
    const final = rec.invoke(999, 'read', null, 'n1');
    rec.complete(final, 'ok', await readSet(kv));
    expect(checkSet(pairOps(rec.ops))).toMatchObject({ valid: true });
  });

  it('classifies errors: failed reads fail, writes fail only when their code says "not applied"', () => {
    expect(classifyError('read', { code: 'QKV_TIMEOUT' })).toBe('fail');
    expect(classifyError('cas', { code: 'QKV_CAS_FAILED' })).toBe('fail');
    expect(classifyError('write', { code: 'QKV_NOT_LEADER' })).toBe('fail');
    expect(classifyError('write', { code: 'QKV_UNAVAILABLE' })).toBe('fail');
    expect(classifyError('write', { code: 'QKV_INDETERMINATE' })).toBe('info');
    expect(classifyError('cas', { code: 'QKV_INTERNAL' })).toBe('info');
    expect(classifyError('add', { code: 'QKV_FROM_THE_FUTURE' })).toBe('info');
    expect(classifyError('add', new Error('socket hang up'))).toBe('info');
  });

  it('rotates register keys after opsPerKey ops', () => {
    const g = new RegisterGenerator(createRng(1), { activeKeys: 1, opsPerKey: 10 });
    const keys = Array.from({ length: 35 }, () => (g.next().value as [string])[0]);
    expect(new Set(keys)).toEqual(new Set(['jl-r0', 'jl-r1', 'jl-r2', 'jl-r3']));
    expect(keys.filter((k) => k === 'jl-r0')).toHaveLength(10);
    expect(SET_PREFIX).toBe('jl-set/');
  });
});
