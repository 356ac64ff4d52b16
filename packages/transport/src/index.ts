// @quorumkv/transport: Raft peer RPC over WebSocket with msgpack frames. See docs/transport.md.
export { PeerTransport } from './transport.js';
export type {
  PeerTransportOptions,
  PeerTls,
  TransportLogger,
  TransportStats,
  PeerStats,
  LinkState,
} from './types.js';
export { defaultLimits, resolveLimits, MIN_FRAME_BYTES, type TransportLimits } from './limits.js';
export { CloseCode, MAX_CLOSE_REASON_BYTES, fitCloseReason } from './close-codes.js';
export { TransportError, TransportConfigError, FrameError } from './errors.js';
export {
  encodeFrame,
  decodeFrame,
  estimateMessageBytes,
  frameBytesNeededForAppend,
  isWireMessageType,
  isValidNodeId,
  checkMessage,
  messageBounds,
  MAX_CONTEXT_BYTES,
  MAX_SNAPSHOT_MEMBERS,
  type MessageBounds,
  FRAME_KIND_MESSAGES,
  FRAME_OVERHEAD_BYTES,
  MAX_NODE_ID_LENGTH,
  type WireMessageType,
} from './codec.js';
export { HELLO_HEADER, PROTOCOL_VERSION, CHANNELS, INCARNATION_HEX_LENGTH, createHelloHeader, type Channel } from './handshake.js';
/** The acceptor's hello check and its replay cache, exported for the fuzzers (@quorumkv/fuzz). */
export { verifyHelloHeader, ReplayCache, type HelloCheck, type HelloVerdict, type Hello } from './handshake.js';
export { backoffDelayMs } from './backoff.js';
export { RAFT_PATH, peerUrl } from './peers.js';
export { ADMIN_AUTH_HEADER, adminToken, adminAuthorization, checkAdminAuthorization, type AdminAuthRefusal } from './admin-token.js';
