// @quorumkv/storage — everything that touches LevelDB on a node: the Raft log and hard state,
// the key-value state machine with exactly-once sessions, and snapshot primitives.
export { openNodeStore, openMemoryNodeStore, createMemoryLogStore, createMemoryKvStateMachine, MemoryDisk } from './node-store.js';
export type { NodeStore, NodeStoreOptions, OpenReport } from './node-store.js';
export type { LogStore, LoadedLog, AppendRequest, LogShortfall, MarkTimer } from './log-store.js';
export type { HighWaterMark } from './high-water.js';
export { crc32 } from './checksum.js';
export { DEFAULT_KV_OPTIONS, RANGE_ROW_OVERHEAD_BYTES, chainHash } from './kv-state-machine.js';
export type { KvStateMachine, KvOptions, ApplyItem, ApplyResult, ApplyErrorCode, RangeRequest, RangePage, RangePageOptions, ReadOptions } from './kv-state-machine.js';
export type { KeyValue, KvRecord } from './kv-layout.js';
export type { KeyChange, ChangesPage } from './watch-history.js';
export type { KvChangeListener } from './kv-state-machine.js';
export { encodeCommand, encodeCommandAt, decodeCommand, CommandDecodeError, COMMAND_LIMITS } from './commands.js';
export type { Command, CommandCommon, CasCondition, CasAction, SessionTag, TxnCommand } from './commands.js';
export { TXN_LIMITS, TxnShapeError, checkBranch } from './txn.js';
export { IDEM_LIMITS, isIdemKey } from './idempotency.js';
export type { IdemTag } from './idempotency.js';
export type { TxnCompare, TxnOp, TxnOpResult, CompareOp, CompareTarget } from './txn.js';
export { DEFAULT_SNAPSHOT_CHUNK_BYTES, SNAPSHOT_MAX_RECORD_BYTES, inspectSnapshotStream } from './snapshot.js';
export type { InstallOptions, SnapshotReader, SnapshotWriter, SnapshotInfo, SnapshotStreamSummary } from './snapshot.js';
export { STORAGE_FORMAT_VERSION } from './meta.js';
export type { AppliedState } from './meta.js';
export type { TestHooks } from './backend.js';
export type { LogEntry, HardState, LogStart, Member, Membership } from './types.js';
export {
  StorageError,
  StorageFormatError,
  StorageCorruptError,
  StorageIoError,
  SnapshotCorruptError,
  StorageArgumentError,
  RevisionCompactedError,
  FutureRevisionError,
} from './errors.js';
