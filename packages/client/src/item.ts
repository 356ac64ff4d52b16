// What reads return: the key and value as bytes, with text helpers, and the revision metadata.

import { utf8, type WireItem } from '@quorumkv/protocol';

/** A stored key, as `get` and `range` return it (bytes, with `text()` helpers). */
export interface KvItem {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  /** Revision of the write that created the key (since it last did not exist). */
  readonly createRevision: number;
  /** Revision of the last write to the key; use it with `cas({ ifModRevision })`. */
  readonly modRevision: number;
  /** Writes since creation: 1 after the first put. */
  readonly version: number;
  /** The value decoded as UTF-8. */
  text(): string;
  /** The key decoded as UTF-8. */
  keyText(): string;
}

/** A stored key with key and value already decoded as UTF-8 (reads with `{ as: 'string' }`). */
export interface KvTextItem {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

/** How reads hand back keys and values: bytes (default) or UTF-8 strings. */
export type ValueFormat = 'bytes' | 'string';

class Item implements KvItem {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  constructor(w: WireItem) {
    this.key = w.key;
    this.value = w.value;
    this.createRevision = w.createRevision;
    this.modRevision = w.modRevision;
    this.version = w.version;
  }
  text(): string {
    return utf8(this.value);
  }
  keyText(): string {
    return utf8(this.key);
  }
}

/** Wraps a wire item in the requested format. */
export function toItem(w: WireItem, as: ValueFormat): KvItem | KvTextItem {
  if (as === 'string') {
    return {
      key: utf8(w.key),
      value: utf8(w.value),
      createRevision: w.createRevision,
      modRevision: w.modRevision,
      version: w.version,
    };
  }
  return new Item(w);
}
