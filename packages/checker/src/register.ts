// The register model the linearizability checker searches against, and the translation of one
// key's history into the compact ops the search works on.
//
// Model: each key is a register holding one JSON value, `null` when absent.
//   read  → value [key, v]          ok iff the register holds v
//   write → value [key, v]          the register becomes v
//   delete→ value [key, null]       the register becomes null
//   cas   → value [key, [from, to]] ok iff the register holds `from`; it becomes `to`
// Outcomes: `ok` ops must take effect between invocation and completion; `fail` ops certainly
// did not happen and are dropped; `info` (or never completed) writes/cas may take effect at any
// time after their invocation, or never; `info` reads constrain nothing and are dropped.

import type { OpPair } from './history.js';
import { outcomeOf } from './history.js';

/** What a register op does in the model (a delete is a write of null). */
export type RegKind = 'read' | 'write' | 'cas';

/**
 * One op of one key as the search sees it. Register values are interned: `arg`/`arg2` index
 * {@link KeyOps.values}, so the model compares small integers instead of JSON text.
 */
export interface RegOp {
  /** Position in {@link KeyOps.ops}; the search's bit and event numbers derive from it. */
  id: number;
  kind: RegKind;
  /** read: the value read; write: the value written; cas: `from`. */
  arg: number;
  /** cas: `to`; otherwise unused (-1). */
  arg2: number;
  /** May have taken effect or not (an `info` or never-completed write/cas). */
  info: boolean;
  pair: OpPair;
  invokeNs: number;
  /** Infinity for an `info` op: it may take effect at any time after its invocation. */
  returnNs: number;
}

/** One key's ops and the interned register values they mention (index 0 is the initial value). */
export interface KeyOps {
  ops: RegOp[];
  /** Canonical JSON of each interned value. */
  values: string[];
}

/** The key of a register op (`value[0]`), or undefined when the op is not shaped like one. */
export function keyOf(pair: OpPair): string | undefined {
  const v = pair.invoke.value;
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const k: unknown = v[0];
  if (typeof k === 'string') return k;
  if (typeof k === 'number') return String(k);
  return undefined;
}

/** The register value of an op's `[key, value]`. */
export function regValue(v: unknown): unknown {
  return Array.isArray(v) && v.length === 2 ? v[1] : undefined;
}

/** Canonical JSON of a register value (undefined and null both mean absent). */
export function canon(v: unknown): string {
  return v === undefined ? 'null' : JSON.stringify(v);
}

/**
 * Values some op could have observed: ok read results and every cas `from`. An `info` write or
 * cas whose new value is in none of them is dropped: if it took effect, nothing can have seen
 * it before it was overwritten, so every linearization that uses it also works without it. This
 * keeps the search small when many writes time out (their return events sit at infinity).
 */
function observedValues(pairs: readonly OpPair[]): Set<string> {
  const seen = new Set<string>();
  for (const pair of pairs) {
    const outcome = outcomeOf(pair);
    if (pair.invoke.f === 'read' && outcome === 'ok') seen.add(canon(regValue(pair.complete!.value)));
    if (pair.invoke.f === 'cas' && outcome !== 'fail') {
      const ft = regValue(pair.invoke.value);
      if (Array.isArray(ft)) seen.add(canon(ft[0]));
    }
  }
  return seen;
}

/**
 * Translates one key's pairs (in invocation order) into search ops: `fail` ops, `info` reads and
 * unobserved `info` writes are left out; values are interned with `initialValue` as value 0.
 */
export function toKeyOps(pairs: readonly OpPair[], initialValue: unknown): KeyOps {
  const values: string[] = [];
  const ids = new Map<string, number>();
  const intern = (json: string): number => {
    let id = ids.get(json);
    if (id === undefined) {
      id = values.length;
      values.push(json);
      ids.set(json, id);
    }
    return id;
  };
  intern(canon(initialValue));
  const ops: RegOp[] = [];
  const observed = observedValues(pairs);
  for (const pair of pairs) {
    const op = toRegOp(pair, observed, intern, ops.length);
    if (op !== undefined) ops.push(op);
  }
  return { ops, values };
}

function toRegOp(pair: OpPair, observed: ReadonlySet<string>, intern: (json: string) => number, id: number): RegOp | undefined {
  const outcome = outcomeOf(pair);
  if (outcome === 'fail') return undefined;
  const info = outcome === 'info';
  // One object literal with every field in one order: every RegOp has the same hidden class.
  const op = (kind: RegKind, arg: number, arg2: number): RegOp => ({
    id,
    kind,
    arg,
    arg2,
    info,
    pair,
    invokeNs: pair.invoke.time,
    returnNs: info ? Infinity : pair.complete!.time,
  });
  switch (pair.invoke.f) {
    case 'read':
      if (info) return undefined; // an unanswered read observed nothing
      return op('read', intern(canon(regValue(pair.complete!.value))), -1);
    case 'write':
    case 'delete': {
      const json = pair.invoke.f === 'delete' ? 'null' : canon(regValue(pair.invoke.value));
      if (info && !observed.has(json)) return undefined;
      return op('write', intern(json), -1);
    }
    case 'cas': {
      const ft = regValue(pair.invoke.value);
      const [from, to] = Array.isArray(ft) ? (ft as unknown[]) : [undefined, undefined];
      if (info && !observed.has(canon(to))) return undefined;
      return op('cas', intern(canon(from)), intern(canon(to)));
    }
    default:
      return undefined;
  }
}

/** The register model's step: the next state, or -1 when the op cannot happen in `state`. */
export function stepRegister(state: number, op: RegOp): number {
  switch (op.kind) {
    case 'read':
      return state === op.arg ? state : -1;
    case 'write':
      return op.arg;
    case 'cas':
      return state === op.arg ? op.arg2 : -1;
  }
}
