// The tiny state machine each simulated node applies committed entries to: a key-value map plus
// the prefix chain of everything applied (so two nodes' applied sequences compare in O(1)).
import { EMPTY_CHAIN, chainLink, entryDigest } from './hash.js';
import type { EntryLike } from './invariants.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client write as the simulation encodes it in an entry: `w <id> <key> <value>`. */
export interface SimWrite {
  id: number;
  key: string;
  value: string;
}

/** Encodes a write as entry data. */
export function encodeWrite(w: SimWrite): Uint8Array {
  return encoder.encode(`w ${w.id} ${w.key} ${w.value}`);
}

/** Decodes entry data written by `encodeWrite`; undefined for anything else (no-ops, garbage). */
export function decodeWrite(data: Uint8Array): SimWrite | undefined {
  if (data.length < 2 || data[0] !== 0x77 /* w */) return undefined;
  const parts = decoder.decode(data).split(' ');
  if (parts.length !== 4) return undefined;
  const id = Number(parts[1]);
  if (!Number.isSafeInteger(id)) return undefined;
  return { id, key: parts[2] as string, value: parts[3] as string };
}

/** What a state-machine snapshot holds (encoded as JSON in the snapshot's data). */
export interface KvSnapshotData {
  index: number;
  chain: number;
  kv: [string, string][];
  /** The membership's record of each member's disk incarnation (see KvStateMachine.incarnations). */
  incarnations: [string, number][];
}

/**
 * The simulated node's state machine. `apply` must be called with consecutive indexes; a gap or
 * a repeat is a host/core bug and throws.
 */
export class KvStateMachine {
  appliedIndex = 0;
  /** Chain of the applied sequence up to appliedIndex. */
  chain = EMPTY_CHAIN;
  readonly kv = new Map<string, string>();
  /**
   * The replicated record of each member's disk incarnation, as the real cluster keeps it in its
   * membership: set by the conf change that adds a member (its context says `disk=N`), removed
   * by the one that removes it. The simulated host maintains it when it applies conf changes;
   * it travels in snapshots like the rest of the replicated state.
   */
  readonly incarnations = new Map<string, number>();

  /** Applies one committed entry and returns the new applied-sequence chain. */
  apply(e: EntryLike, normalType: number): number {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(`state machine: applying index ${e.index} after ${this.appliedIndex}`);
    }
    this.chain = chainLink(this.chain, entryDigest(e.index, e.term, e.type, e.data));
    this.appliedIndex = e.index;
    if (e.type === normalType) {
      const w = decodeWrite(e.data);
      if (w) this.kv.set(w.key, w.value);
    }
    return this.chain;
  }

  /** Serialises the state at appliedIndex. */
  snapshotData(): Uint8Array {
    const snap: KvSnapshotData = { index: this.appliedIndex, chain: this.chain, kv: [...this.kv], incarnations: [...this.incarnations] };
    return encoder.encode(JSON.stringify(snap));
  }

  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void {
    const snap = decodeSnapshotData(data);
    this.appliedIndex = snap.index;
    this.chain = snap.chain;
    this.kv.clear();
    for (const [k, v] of snap.kv) this.kv.set(k, v);
    this.incarnations.clear();
    for (const [id, disk] of snap.incarnations) this.incarnations.set(id, disk);
  }
}

/** Parses snapshot data made by `snapshotData`; throws a clear error on anything else. */
export function decodeSnapshotData(data: Uint8Array): KvSnapshotData {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw new Error(`snapshot data is not valid JSON (${data.length} bytes)`, { cause: err });
  }
  const s = parsed as Partial<KvSnapshotData> | null;
  if (!s || typeof s.index !== 'number' || typeof s.chain !== 'number' || !Array.isArray(s.kv)) {
    throw new Error('snapshot data lacks index/chain/kv');
  }
  return { index: s.index, chain: s.chain, kv: s.kv, incarnations: Array.isArray(s.incarnations) ? s.incarnations : [] };
}
