// What a watcher reads when it is behind the server's in-memory window of recent changes: the
// changes of a key range after a revision, read from history at the reader's own pace.
//
// History is kept by (key, revision), not by revision, so one read walks every version of the
// keys in range (bounded by compaction) and keeps the `maxChanges` lowest revisions in a bounded
// buffer: memory is O(maxChanges) however long the history is. A revision's changes are never
// split (a transaction's changes share one revision), so a read may return a few more than
// `maxChanges` when the last revision has several.
import { type ReadView, ITERATE_BATCH_MAX } from './backend.js';
import { bytesEqual, prefixUpperBound } from './codec.js';
import { type KvRecord, decodeKvRecord, historyRange, parseHistoryKey } from './kv-layout.js';

/**
 * One change of one key: the key's record at `revision` (null: deleted there) and its record
 * just before (null: absent). The shape the apply path hands to watchers too (HistoryWrite).
 */
export interface KeyChange {
  key: Uint8Array;
  revision: number;
  record: KvRecord | null;
  prev: KvRecord | null;
}

/** The changes one history read found. */
export interface ChangesPage {
  /** In revision order; within a revision, in key order. */
  changes: KeyChange[];
  /**
   * Every change in range with a revision in (after, throughRevision] is in `changes`: the read's
   * upper revision when nothing was cut, else the last change's revision.
   */
  throughRevision: number;
}

/** What readChanges reads. */
export interface ChangesRequest {
  gen: number;
  location: string;
  /** [start, end) of user keys; end undefined = to the last key. */
  start: Uint8Array;
  end: Uint8Array | undefined;
  /** Changes strictly after this revision… */
  afterRevision: number;
  /** …and at or below this one (a revision whose batch has landed: its history is complete). */
  upToRevision: number;
  /** At least 1; see the top of the file for when a page holds more. */
  maxChanges: number;
}

/** The key range of a prefix as ChangesRequest's [start, end). */
export function prefixBounds(prefix: Uint8Array): { start: Uint8Array; end: Uint8Array | undefined } {
  return { start: prefix, end: prefixUpperBound(prefix) };
}

/**
 * Reads the changes of [start, end) with a revision in (afterRevision, upToRevision], the lowest
 * `maxChanges` of them (whole revisions). The caller checks afterwards that no compaction above
 * `afterRevision` ran meanwhile (then versions it needed may be gone).
 */
export async function readChanges(view: ReadView, req: ChangesRequest): Promise<ChangesPage> {
  const kept = new BoundedChanges(req.maxChanges);
  const decode = (v: Uint8Array | null): KvRecord | null => (v === null || v.length === 0 ? null : decodeKvRecord(req.location, v));
  let key: Uint8Array | undefined;
  // The key's previous version, still encoded: only the versions kept are decoded.
  let prev: Uint8Array | null = null;
  for await (const batch of view.iterate('history', historyRange(req.gen, req.start, req.end), ITERATE_BATCH_MAX)) {
    for (const [k, v] of batch) {
      const parsed = parseHistoryKey(req.location, k);
      if (!key || !bytesEqual(key, parsed.key)) {
        key = parsed.key;
        prev = null;
      }
      if (parsed.revision > req.upToRevision) continue;
      if (parsed.revision > req.afterRevision && kept.wants(parsed.revision)) kept.add({ key, revision: parsed.revision, record: decode(v), prev: decode(prev) });
      prev = v;
    }
  }
  return kept.page(req.upToRevision);
}

/** The lowest-revision changes seen so far, at most about 2 × max in memory. */
class BoundedChanges {
  private items: KeyChange[] = [];
  /** Once cut, changes above this revision can never be kept. */
  private ceiling = Number.POSITIVE_INFINITY;

  constructor(private readonly max: number) {}

  wants(revision: number): boolean {
    return revision <= this.ceiling;
  }

  add(c: KeyChange): void {
    this.items.push(c);
    if (this.items.length >= 2 * this.max) this.cut();
  }

  page(upToRevision: number): ChangesPage {
    this.cut();
    const cut = this.ceiling !== Number.POSITIVE_INFINITY;
    return { changes: this.items, throughRevision: cut ? this.ceiling : upToRevision };
  }

  /** Sorts and keeps the lowest `max` (whole revisions); the revision of the last kept becomes the ceiling. */
  private cut(): void {
    this.items.sort((a, b) => a.revision - b.revision);
    if (this.items.length <= this.max) return;
    let n = this.max;
    const last = (this.items[n - 1] as KeyChange).revision;
    while (n < this.items.length && (this.items[n] as KeyChange).revision === last) n++;
    this.items.length = n;
    this.ceiling = last;
  }
}
