// @quorumkv/server — the quorumkv node: host loop, HTTP API, client endpoint, CLI.
export { startServer, type RunningServer } from './server.js';
export { parseServeConfig, ConfigError, DEFAULTS, SERVE_USAGE, type ServeConfig, type PeerSpec } from './config.js';
export { QuorumKvNode, type NodeStatusView } from './node.js';
export { attachClientEndpoint, type ClientEndpoint, type ClientEndpointOptions } from './client-endpoint.js';
export { ManualClock, createRealClock, type Clock, type TimerHandle, type Random } from './world.js';
export { NodeKvService } from './kv-service.js';
export { ByteBudget } from './admission.js';
export { NodeMetrics } from './metrics.js';
export { createSinkLogger, type Logger } from './logger.js';
export { HOST_PLANTS, memoryIdentityFiles, sleepOn, type HostPlant, type IdentityFiles, type NodeWorld, type PeerLink, type PeerLinkHandlers } from './host-world.js';
export { SnapshotManager, snapshotHostOf, type SnapshotFaults, type SnapshotSocket, type SnapshotChannel } from './snapshots.js';
export { memberContext } from './membership.js';
export { initDevCerts, DEV_CLIENT_CN, type DevCerts, type DevCertsOptions } from './certs.js';
export { NodeTls, PEER_SERVERNAME_SUFFIX, peerServername, CLIENT_CERT_REQUIRED_CODE } from './tls.js';
export type { TlsFiles } from './tls-material.js';
export { fetchNode, type NodeRequestInit } from './node-fetch.js';
/** The snapshot channel's receiving machine and frame codec, exported for the fuzzers (@quorumkv/fuzz). */
export { SnapshotReceiver, type ReceiveAction, type ReceiveEvent } from './snapshot-receiver.js';
export { encodeFrame as encodeSnapshotFrame, decodeFrame as decodeSnapshotFrame, type SenderFrame, type ReceiverFrame } from './snapshot-frames.js';
