// @quorumkv/raft — a pure, deterministic Raft consensus core in the style of etcd's raft library.
// See docs/raft.md for the API and the host loop.
export * from './types.js';
export {
  RaftError,
  NotLeaderError,
  ProposalDroppedError,
  CompactedError,
  UnavailableError,
  SnapshotTemporarilyUnavailableError,
  ConfigError,
  BadMessageError,
} from './errors.js';
export { RawNode } from './rawnode.js';
export { MemoryStorage } from './storage.js';
export { encodeConfChange, decodeConfChange } from './confchange.js';
export { validateConfig } from './config.js';
export { entrySize } from './log.js';
export { checkMessageShape } from './validate.js';
