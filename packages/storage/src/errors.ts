// Typed errors for operating conditions of the storage layer. `code` is the stable contract;
// messages may change. Broken invariants (a programmer error) throw a plain Error from `assert`.

/** Base of every error the storage layer raises on purpose. */
export class StorageError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The store on disk has a format this build does not understand (newer, or unknown). */
export class StorageFormatError extends StorageError {
  readonly foundVersion: number;
  constructor(location: string, foundVersion: number, supportedVersion: number) {
    super(
      'QKV_STORAGE_FORMAT',
      `storage at ${location} has format version ${foundVersion}; this build supports only version ${supportedVersion} ` +
        '(refusing to open it; use a matching quorumkv version)',
    );
    this.foundVersion = foundVersion;
  }
}

/** Metadata or a record on disk could not be decoded or breaks an invariant of the format. */
export class StorageCorruptError extends StorageError {
  constructor(location: string, detail: string, options?: { cause?: unknown }) {
    super('QKV_STORAGE_CORRUPT', `storage at ${location} is damaged: ${detail} (refusing to continue)`, options);
  }
}

/** The underlying database failed (I/O error, locked by another process, or an earlier write failed). */
export class StorageIoError extends StorageError {
  constructor(location: string, detail: string, options?: { cause?: unknown }) {
    super('QKV_STORAGE_IO', `storage at ${location}: ${detail}`, options);
  }
}

/** An incoming snapshot stream is malformed, truncated, or does not match what was announced. */
export class SnapshotCorruptError extends StorageError {
  constructor(detail: string) {
    super('QKV_SNAPSHOT_CORRUPT', `snapshot stream rejected: ${detail}`);
  }
}

/** A caller passed arguments that break the API contract (bad range, bad limit…). */
export class StorageArgumentError extends StorageError {
  constructor(detail: string) {
    super('QKV_STORAGE_ARGUMENT', detail);
  }
}

/** A read asked for a revision below the compacted one: that history is gone. */
export class RevisionCompactedError extends StorageError {
  /** The lowest revision that can still be read. */
  readonly compactedRevision: number;
  constructor(requested: number, compactedRevision: number) {
    super('QKV_COMPACTED', `revision ${requested} is compacted: the oldest readable revision is ${compactedRevision}`);
    this.compactedRevision = compactedRevision;
  }
}

/** A read asked for a revision above the current one (QKV_STORAGE_ARGUMENT: the caller's mistake). */
export class FutureRevisionError extends StorageError {
  /** The store's current revision. */
  readonly currentRevision: number;
  constructor(requested: number, currentRevision: number) {
    super('QKV_STORAGE_ARGUMENT', `revision ${requested} is in the future: the current revision is ${currentRevision}`);
    this.currentRevision = currentRevision;
  }
}

/** Throws when a programmer invariant does not hold. Never use for operating conditions. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`storage invariant violated: ${message}`);
}
