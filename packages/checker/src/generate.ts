// Seeded generators of register histories from a sequential model — linearizable by
// construction — and mutations that break them. They test the checkers, not the store.

import type { Op, OpF } from './history.js';
import type { Rng } from './random.js';
import { createRng } from './random.js';

/** Options of {@link generateRegisterHistory}. */
export interface RegisterGenOptions {
  seed: number;
  processes?: number;
  /** Operations to invoke in total. */
  ops?: number;
  keys?: number;
  /** Share of ops whose completion is lost (`info`); they may take effect later, or never. */
  infoRate?: number;
  /** Share of writes that fail without effect (`fail`). */
  failRate?: number;
  /** Share of ops that are deletes (value `[key, null]`). Default 0. */
  deleteRate?: number;
  /** Largest gap between two consecutive events, ns. Default 1000. */
  stepNsMax?: number;
}

interface InFlight {
  invoke: Op;
  key: string;
  f: 'read' | 'write' | 'cas' | 'delete';
  arg: unknown;
  effected: boolean;
  result: { type: 'ok' | 'fail'; value: unknown } | undefined;
  fate: 'normal' | 'info' | 'fail';
}

/**
 * Generates a concurrent register history in which every op takes effect atomically at one
 * instant between its invocation and completion (or, for `info` ops, at any instant after the
 * invocation, or never). Values written are unique integers. The result is always linearizable.
 */
export function generateRegisterHistory(options: RegisterGenOptions): Op[] {
  const rng = createRng(options.seed);
  const procs = options.processes ?? 4;
  const total = options.ops ?? 60;
  const keys = Array.from({ length: options.keys ?? 2 }, (_, i) => `k${i}`);
  const infoRate = options.infoRate ?? 0.1;
  const failRate = options.failRate ?? 0.05;
  const deleteRate = options.deleteRate ?? 0;
  const stepNsMax = options.stepNsMax ?? 1000;
  const state = new Map<string, unknown>();
  const history: Op[] = [];
  const inFlight = new Map<number, InFlight>();
  const ghosts: InFlight[] = []; // info ops that have not taken effect yet
  let time = 0;
  let invoked = 0;
  let nextValue = 1;
  const emit = (op: Omit<Op, 'index' | 'time'>): Op => {
    time += rng.int(1, stepNsMax);
    const full: Op = { index: history.length, time, ...op };
    history.push(full);
    return full;
  };
  const effect = (x: InFlight): void => {
    x.effected = true;
    const cur = state.get(x.key) ?? null;
    if (x.f === 'read') x.result = { type: 'ok', value: [x.key, cur] };
    else if (x.f === 'write' || x.f === 'delete') {
      state.set(x.key, x.arg);
      x.result = { type: 'ok', value: [x.key, x.arg] };
    } else {
      const [from, to] = x.arg as [unknown, unknown];
      if (cur === from) {
        state.set(x.key, to);
        x.result = { type: 'ok', value: [x.key, x.arg] };
      } else x.result = { type: 'fail', value: [x.key, x.arg] };
    }
  };
  while (invoked < total || inFlight.size > 0) {
    const idle = [...Array(procs).keys()].filter((p) => !inFlight.has(p));
    const roll = rng.next();
    if (ghosts.length > 0 && roll < 0.05) {
      effect(ghosts.splice(rng.int(0, ghosts.length - 1), 1)[0]!);
    } else if (invoked < total && idle.length > 0 && roll < 0.4) {
      const p = rng.pick(idle);
      inFlight.set(p, invokeRandom(rng, p, keys, state, emit, () => nextValue++, { infoRate, failRate, deleteRate }));
      invoked++;
    } else if (inFlight.size > 0) {
      const [p, x] = rng.pick([...inFlight.entries()]);
      if (!x.effected && (x.fate === 'normal' || (x.fate === 'info' && rng.chance(0.3)))) effect(x);
      else completeOp(rng, p, x, inFlight, ghosts, emit);
    }
  }
  // Ghost info ops that never took effect simply never happened; that is allowed.
  return history;
}

function invokeRandom(
  rng: Rng,
  p: number,
  keys: readonly string[],
  state: ReadonlyMap<string, unknown>,
  emit: (op: Omit<Op, 'index' | 'time'>) => Op,
  freshValue: () => number,
  rates: { infoRate: number; failRate: number; deleteRate: number },
): InFlight {
  const key = rng.pick(keys);
  // No draw when deletes are off, so older seeds keep their histories.
  const f = rates.deleteRate > 0 && rng.chance(rates.deleteRate) ? 'delete' : rng.pick(['read', 'write', 'cas'] as const);
  let arg: unknown = null;
  if (f === 'write') arg = freshValue();
  if (f === 'cas') arg = [rng.chance(0.6) ? (state.get(key) ?? null) : rng.int(1, 5), freshValue()];
  const invoke = emit({ process: p, type: 'invoke', f: f as OpF, value: [key, f === 'read' ? null : arg] });
  const fate = f !== 'read' && rng.chance(rates.failRate) ? 'fail' : rng.chance(rates.infoRate) ? 'info' : 'normal';
  return { invoke, key, f, arg, effected: false, result: undefined, fate };
}

function completeOp(rng: Rng, p: number, x: InFlight, inFlight: Map<number, InFlight>, ghosts: InFlight[], emit: (op: Omit<Op, 'index' | 'time'>) => Op): void {
  inFlight.delete(p);
  const f = x.invoke.f;
  if (x.fate === 'fail') {
    emit({ process: p, type: 'fail', f, value: x.invoke.value, error: 'GEN_FAIL' });
  } else if (x.fate === 'info') {
    emit({ process: p, type: 'info', f, value: x.invoke.value, error: 'GEN_TIMEOUT' });
    // The op may still take effect later (a ghost), or never; a read's result is simply lost.
    if (!x.effected && x.f !== 'read' && rng.chance(0.7)) ghosts.push(x);
  } else {
    emit({ process: p, type: x.result!.type, f, value: x.result!.value });
  }
}

/** Makes one ok read return a value nobody ever wrote: always non-linearizable. */
export function mutateReadToUnwritten(history: readonly Op[], rng: Rng): Op[] | undefined {
  const reads = history.filter((o) => o.type === 'ok' && o.f === 'read');
  if (reads.length === 0) return undefined;
  const target = rng.pick(reads);
  return history.map((o) => (o === target ? { ...o, value: [(o.value as unknown[])[0], 'never-written'] } : o));
}

/** Makes one ok read return some other value written to the same key: often (not always) invalid. */
export function mutateReadToOtherValue(history: readonly Op[], rng: Rng): Op[] | undefined {
  const reads = history.filter((o) => o.type === 'ok' && o.f === 'read');
  if (reads.length === 0) return undefined;
  const target = rng.pick(reads);
  const key = (target.value as unknown[])[0];
  const current = (target.value as unknown[])[1];
  const candidates = history
    .filter((o) => o.type === 'invoke' && (o.f === 'write' || o.f === 'cas') && (o.value as unknown[])[0] === key)
    .map((o) => (o.f === 'write' ? (o.value as unknown[])[1] : ((o.value as unknown[])[1] as unknown[])[1]))
    .filter((v) => v !== current);
  if (candidates.length === 0) return undefined;
  const v = rng.pick([null, ...candidates]);
  return history.map((o) => (o === target ? { ...o, value: [key, v] } : o));
}
