// @quorumkv/client — the embeddable client of quorumkv. Runs in Node (>= 20) and in browsers.
//
//   const kv = await connect({ endpoints: ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'] });
//   await kv.put('user/1', 'ada');
//   const item = await kv.get('user/1');   // item?.text() === 'ada'
//   await kv.close();

export { connect, KvClient } from './client.js';
export type {
  CasIf,
  CasSpec,
  CasThen,
  DeleteRangeResponse,
  DeleteResponse,
  GetOptions,
  KeyRangeSpec,
  TxnOptions,
  RangeOptions,
  WriteOptions,
  WriteResult,
} from './client.js';
export type { ConnectOptions, CallOptions, RetryEvent, ClientTlsOptions } from './options.js';
export { Watch } from './watch.js';
export type { WatchEvent, WatchOptions } from './watch.js';
export type { KvItem, KvTextItem, ValueFormat } from './item.js';
export type { TxnCompareSpec, TxnOpSpec, TxnOpResponse, TxnResponse, TxnSpec } from './txn.js';
export type { BackoffPolicy } from './backoff.js';
export type { WebSocketFactory, WebSocketLike } from './websocket.js';
export {
  AbortedError,
  BusyError,
  CasFailedError,
  CompactedError,
  ClosedError,
  ErrorCode,
  IndeterminateError,
  InternalError,
  InvalidArgumentError,
  LimitExceededError,
  NoLeaderError,
  NotLeaderError,
  ProtocolError,
  QuorumKvError,
  SessionExpiredError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  DiskFullError,
  StorageUnavailableError,
  WRITE_APPLIED_CODES,
  WRITE_NOT_APPLIED_CODES,
  writeOutcomeOf,
} from '@quorumkv/protocol';
export type { WriteOutcome } from '@quorumkv/protocol';
export type { BytesLike, ClusterStatus, CompactResult, Consistency, LeaderHint, MemberStatus, TxnCompareOp } from '@quorumkv/protocol';
export { TXN_COMPARES_MAX, TXN_DELETED_KEYS_MAX, TXN_OPS_MAX, TXN_RANGE_LIMIT_MAX, TXN_READ_BYTES_MAX } from '@quorumkv/protocol';
