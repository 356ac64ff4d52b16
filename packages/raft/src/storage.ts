// MemoryStorage: the reference RaftStorage. The server keeps one as the in-memory view of its
// LevelDB log since the last snapshot; the simulation uses one as a node's "disk".
//
// ents[0] is a dummy entry standing for the snapshot (its index and term); real entries follow.
import { CompactedError, UnavailableError, assert } from './errors.js';
import { limitSize } from './log.js';
import { EntryType, type ConfState, type Entry, type HardState, type RaftStorage, type Snapshot } from './types.js';

const EMPTY = new Uint8Array(0);

export class MemoryStorage implements RaftStorage {
  private hardState: HardState;
  private snap: Snapshot;
  private ents: Entry[];

  constructor(init: { hardState?: HardState; confState?: ConfState } = {}) {
    this.hardState = init.hardState ?? { term: 0, vote: null, commit: 0 };
    this.snap = {
      metadata: { index: 0, term: 0, confState: init.confState ?? { voters: [], learners: [] } },
      data: EMPTY,
    };
    this.ents = [{ index: 0, term: 0, type: EntryType.Normal, data: EMPTY }];
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  /** Replaces the membership reported by initialState (the host persists it with applied index). */
  setConfState(cs: ConfState): void {
    this.snap = { ...this.snap, metadata: { ...this.snap.metadata, confState: cs } };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(i: number): number {
    const off = this.offset();
    if (i < off) throw new CompactedError(i, off + 1);
    if (i > this.lastIndex()) throw new UnavailableError(i, this.lastIndex());
    return this.ents[i - off]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new CompactedError(lo, off + 1);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1, this.lastIndex());
    return limitSize(this.ents.slice(lo - off, hi - off), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Appends entries, replacing any conflicting suffix; entries at or below the snapshot are skipped. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return;
    let es = entries;
    if (first > es[0]!.index) es = es.slice(first - es[0]!.index);
    const at = es[0]!.index - this.offset();
    assert(at <= this.ents.length, `missing log entry: last ${this.lastIndex()}, appending at ${es[0]!.index}`);
    if (at < this.ents.length) this.ents = this.ents.slice(0, at);
    for (const e of es) this.ents.push(e);
  }

  /** Replaces everything with the snapshot (a follower installing a leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) return;
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: EntryType.Normal, data: EMPTY }];
  }

  /** Records a snapshot of the state machine at `index` (<= applied). The log is kept; see compact. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    assert(index > this.snap.metadata.index, `snapshot ${index} is not newer than ${this.snap.metadata.index}`);
    assert(index <= this.lastIndex(), `snapshot ${index} is past the last index ${this.lastIndex()}`);
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Discards entries up to `index` (which a snapshot must cover). */
  compact(index: number): void {
    const off = this.offset();
    if (index <= off) return;
    assert(index <= this.lastIndex(), `compact ${index} is past the last index ${this.lastIndex()}`);
    // Entries past the snapshot must stay: a follower that needs them could not get them otherwise.
    assert(index <= this.snap.metadata.index, `compact ${index} is past the snapshot ${this.snap.metadata.index}`);
    const t = this.term(index);
    this.ents = [{ index, term: t, type: EntryType.Normal, data: EMPTY }, ...this.ents.slice(index - off + 1)];
  }

  /** A deep-enough copy for simulation (entries are immutable once created). */
  clone(): MemoryStorage {
    const c = new MemoryStorage();
    c.hardState = { ...this.hardState };
    c.snap = this.snap;
    c.ents = this.ents.slice();
    return c;
  }
}
