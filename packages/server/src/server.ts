// Assembles a node: storage + core (node.ts), peer transport, client WebSocket endpoint and the
// HTTP API on ONE port, routed by path. Also the graceful stop.
import { adminToken } from '@quorumkv/transport';
import { randomInt } from 'node:crypto';
import { statfsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ByteBudget, ConnectionLimiter, SessionQuota } from './admission.js';
import { attachClientEndpoint, type ClientEndpoint } from './client-endpoint.js';
import { isLoopbackHost, type ServeConfig, clientFrameBytesMax } from './config.js';
import { HttpApi } from './http-api.js';
import { NodeKvService } from './kv-service.js';
import { coreLogger, createLogger, type Logger } from './logger.js';
import { failureDomainWarnings } from './membership.js';
import { NodeMetrics } from './metrics.js';
import type { QuorumKvNode } from './node.js';
import { openProductionNode } from './node-production.js';
import type { StorageFaultCounts, StorageFaultKind } from './storage-fault.js';
import { SnapshotManager, snapshotHostOf } from './snapshots.js';
import { createRealClock } from './world.js';
import { recordOwnZone } from './zone-record.js';
import { AdminApi } from './admin.js';
import { fsIdentityFiles } from './durable-file.js';
import { OpsSwitches } from './ops-switches.js';
import { WatchHub } from './watch-hub.js';
import { watchNodeView } from './watch-node.js';
import { CLIENT_CERT_REQUIRED_CODE, NodeTls } from './tls.js';
import { peerHttpOf } from './peer-http.js';
import { registerTlsMetrics } from './tls-metrics.js';
import { CatchupThrottleLoop } from './catchup-throttle-loop.js';
import { WatchStreams } from './watch-stream.js';

export interface RunningServer {
  node: QuorumKvNode;
  http: http.Server;
  /** The node's TLS (reload() on SIGHUP), or undefined when it serves plaintext. */
  tls: NodeTls | undefined;
  /** The bound port (useful with --listen HOST:0 in tests). */
  port: number;
  stop(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  logger?: Logger;
  /**
   * Called (once) when a disk write fails with ENOSPC or EIO, instead of ending the process; the
   * caller stops this server and starts another once writes work (storage-recovery.ts).
   */
  onStorageFault?: (kind: StorageFaultKind, err: Error) => void;
  /** Storage-fault counts kept across restarts inside the process, served on /metrics. */
  storageFaults?: StorageFaultCounts;
}

/** Starts a node and listens; resolves once it accepts connections. */
export async function startServer(cfg: ServeConfig, opts: StartServerOptions = {}): Promise<RunningServer> {
  const log = opts.logger ?? createLogger(cfg.id, cfg.logLevel, [cfg.clusterSecret, adminToken(cfg.clusterSecret)]);
  const metrics = new NodeMetrics();
  const tls = cfg.tls ? new NodeTls(cfg.tls, cfg.id, log.child({ component: 'tls' })) : undefined;
  const peerHttp = peerHttpOf(tls);
  const { node, transport } = await openProductionNode(cfg, log, metrics, tls, opts.onStorageFault);
  if (opts.storageFaults) metrics.registerStorageFaults(opts.storageFaults);
  const snapshots = new SnapshotManager(snapshotHostOf(node), { dial: (peer) => transport.dialSnapshot(peer) }, {
    chunkBytes: cfg.snapshotChunkBytes,
    rateBytesPerSec: cfg.snapshotRateBytesPerSec,
    maxConcurrentSends: cfg.maxConcurrentSnapshotSends,
    clock: createRealClock(),
    random: { int: (n) => randomInt(n) },
    faults: {
      ...(cfg.faultSnapshotCorruptEvery > 0 ? { corruptEveryNthChunk: cfg.faultSnapshotCorruptEvery } : {}),
      ...(cfg.faultSnapshotCutAfterChunks > 0 ? { cutAfterChunks: cfg.faultSnapshotCutAfterChunks } : {}),
    },
  });
  metrics.registerTransport(() => transport.stats());
  metrics.registerCore(() => node.raw.status());
  metrics.registerIdentity(() => node.otherIncarnationDropped());
  node.opsSwitches = new OpsSwitches(fsIdentityFiles(cfg.dataDir));
  node.opsSwitches.observe((s) => snapshots.setSendsPaused(s.snapshotSendsPaused));
  const startedMs = performance.now();
  metrics.registerAvailability(() => ({ leaderlessSeconds: node.leaderless.seconds(node.clock.nowMs()), uptimeSeconds: (performance.now() - startedMs) / 1000 }));
  metrics.registerDisk(() => dataDirSpace(cfg.dataDir));
  metrics.registerOpsSwitches(() => node.opsSwitches.snapshot());
  metrics.registerFailureDomains(() => failureDomainWarnings(node.membership(), { id: node.id, zone: cfg.zone }).length > 0);
  const throttle = new CatchupThrottleLoop(cfg.catchupThrottle, { clock: node.clock, sender: snapshots, samples: metrics, latencyFloorMs: cfg.catchupLatencyFloorMs });
  metrics.registerCatchupThrottle(() => throttle.view());
  node.catchupThrottleView = () => throttle.view();
  node.snapshotHooks = snapshots;
  node.snapshotStatus = () => snapshots.status();
  node.snapshotAcceptor = (peer, ws) => snapshots.acceptConnection(peer, ws);
  const rangeBudget = new ByteBudget('range bytes in flight', cfg.maxRangeBytesInFlight);
  const requestBudget = new ByteBudget('buffered request bytes', cfg.maxBufferedRequestBytes);
  const service = new NodeKvService(node, rangeBudget);
  const watches = new WatchHub(node.store.kv, watchNodeView(node), {
    windowChangesMax: cfg.watchWindowChanges,
    watchersPerNodeMax: cfg.maxWatchers,
    watchersPerConnectionMax: cfg.maxWatchersPerConnection,
  });
  metrics.registerWatches(() => watches.stats());
  const api = new HttpApi(node, { service, requestBudget, watches, peerHttp });
  api.admin = new AdminApi(node, snapshots, peerHttp);
  const sessionQuota = new SessionQuota({
    maxSessionsPerConnection: cfg.maxSessionsPerConnection,
    maxSessionsPerAddress: cfg.maxSessionsPerAddress,
    windowMs: cfg.sessionTtlMs,
  });
  const endpoint: ClientEndpoint = attachClientEndpoint({
    service,
    watch: new WatchStreams(watches),
    requestBudget,
    // Only the leader proposes, so only there can a write create a session: a follower answers
    // QKV_NOT_LEADER, and counting that against the client's quota would waste it.
    sessions: { known: (id) => !node.isLeader() || node.store.kv.hasSession(id), quota: sessionQuota },
    maxConnections: cfg.maxConnections,
    maxKeyBytes: cfg.maxKeyBytes,
    maxValueBytes: cfg.maxValueBytes,
    maxFrameBytes: clientFrameBytesMax(cfg),
    defaultTimeoutMs: cfg.requestTimeoutMs,
    logger: coreLogger(log.child({ component: 'client-endpoint' })),
    onRefused: (kind) => metrics.busyRejections.inc({ kind }),
    onError: (code) => metrics.countError('client', code),
  });
  const refused = new WeakSet<Duplex>();
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (refused.has(req.socket)) req.socket.destroy(); // it was already answered 503
    else if (!refuseClientWithoutCert(tls, req.socket, res)) api.handle(req, res);
  };
  const server: http.Server = tls ? https.createServer({ ...tls.serverOptions(), keepAliveTimeout: 30_000 }, onRequest) : http.createServer({ keepAliveTimeout: 30_000 }, onRequest);
  if (tls && server instanceof https.Server) tls.attach(server);
  const connections = new ConnectionLimiter(cfg);
  limitConnections(server, connections, refused, log, () => metrics.busyRejections.inc({ kind: 'connections' }), tls !== undefined);
  metrics.registerAdmission(() => ({ rangeBytes: rangeBudget.usedBytes, requestBytes: requestBudget.usedBytes, connections: connections.open }));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (refused.has(socket)) return socket.destroy();
    const path = (req.url ?? '').split('?')[0];
    if (path === '/raft') transport.handleUpgrade(req, socket, head);
    else if (path === '/client') {
      if (!refuseClientWithoutCert(tls, socket, undefined)) endpoint.handleUpgrade(req, socket, head);
    }
    else {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    }
  });
  if (tls) countTlsClientErrors(server, log, registerTlsMetrics(metrics.registry, tls).handshakeFailed);
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  try {
    await node.found(); // the founding handshake needs the port open: founding peers probe each other
  } catch (e) {
    server.close();
    await endpoint.close().catch(() => undefined);
    api.close();
    await node.stop();
    server.closeAllConnections();
    throw e;
  }
  node.start();
  throttle.start();
  tls?.watch();
  const zoneRecorder = recordOwnZone(node, cfg.zone, log, peerHttp);
  log.info({ listen: `${cfg.host}:${port}`, peers: cfg.peers.map((p) => `${p.id}=${p.address}`), zone: cfg.zone }, 'node listening');
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info({}, 'stopping: no new requests, flushing, closing storage');
      zoneRecorder.stop();
      tls?.close();
      throttle.stop();
      server.close();
      watches.close();
      await endpoint.close().catch(() => undefined);
      api.close();
      await node.stop();
      server.closeAllConnections();
      log.info({}, 'stopped');
    })());
  if (tls) log.info({ clientCertAuth: cfg.tls!.clientCertAuth }, 'TLS on: peers need a certificate naming their node id');
  else if (isLoopbackHost(cfg.host)) log.info({}, 'plaintext on loopback: no TLS configured');
  else log.warn({ listen: cfg.listen }, 'plaintext on a non-loopback address (--insecure): traffic can be read and peers impersonated by anyone holding the cluster secret');
  return { node, http: server, port, tls, stop };
}

/**
 * A connection that fails the TLS handshake (plain HTTP to the TLS port, an untrusted client) is
 * closed; the node logs it at most once per interval, with a count, so a scanner cannot flood the
 * log.
 */
function countTlsClientErrors(server: http.Server, log: Logger, onFailure: () => void): void {
  let failedSinceLog = 0;
  let lastLogMs = 0;
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    socket.destroy();
    onFailure();
    failedSinceLog++;
    if (Date.now() - lastLogMs < CONNECTION_REFUSAL_LOG_INTERVAL_MS) return;
    log.warn({ err: err.code ?? err.message, failed: failedSinceLog }, 'TLS handshake failed (plain HTTP to the TLS port, or a client the node does not trust); connection closed');
    lastLogMs = Date.now();
    failedSinceLog = 0;
  });
}

/**
 * Under --client-cert-auth, answers a client connection without a valid certificate (HTTP: 401
 * JSON with a stable code; an upgrade: the same on the raw socket, then closes it). Returns
 * whether it refused.
 */
function refuseClientWithoutCert(tls: NodeTls | undefined, socket: Duplex, res: http.ServerResponse | undefined): boolean {
  const reason = tls?.checkClient(socket) ?? null;
  if (reason === null) return false;
  const body = JSON.stringify({ code: CLIENT_CERT_REQUIRED_CODE, message: reason });
  if (res) {
    res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  } else {
    socket.end(`HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }
  return true;
}

/**
 * Admits each TCP connection against the per-node and per-address limits as it is accepted,
 * before anything is read from it. A refused connection gets `503 QKV_BUSY` (JSON, with
 * Retry-After) and is closed — on a TLS port it is closed at once, since no answer can be sent
 * before a handshake; the count drops when an admitted connection closes.
 */
function limitConnections(server: http.Server, limiter: ConnectionLimiter, refused: WeakSet<Duplex>, log: Logger, onRefused: () => void, tls: boolean): void {
  let refusedSinceLog = 0;
  let lastLogMs = 0;
  server.on('connection', (socket: Socket) => {
    const admitted = limiter.admit(socket.remoteAddress);
    if ('release' in admitted) {
      socket.once('close', admitted.release);
      return;
    }
    refused.add(socket);
    onRefused();
    refusedSinceLog++;
    if (Date.now() - lastLogMs >= CONNECTION_REFUSAL_LOG_INTERVAL_MS) {
      // At most one line per interval: a flood of connections must not become a flood of logs.
      log.warn({ remote: socket.remoteAddress, reason: admitted.refused, refused: refusedSinceLog }, 'connections refused');
      lastLogMs = Date.now();
      refusedSinceLog = 0;
    }
    socket.on('error', () => undefined);
    if (tls) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({ code: 'QKV_BUSY', message: `connection refused: ${admitted.refused}`, retryAfterMs: CONNECTION_RETRY_AFTER_MS });
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: application/json\r\n` +
        `retry-after: ${CONNECTION_RETRY_AFTER_MS / 1000}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    socket.destroySoon();
  });
}

/** Free and total bytes of the file system holding `dir` (statfs), or undefined when unreadable. */
function dataDirSpace(dir: string): { freeBytes: number; capacityBytes: number } | undefined {
  try {
    const s = statfsSync(dir);
    return { freeBytes: s.bavail * s.bsize, capacityBytes: s.blocks * s.bsize };
  } catch {
    return undefined;
  }
}

/** `Retry-After` of a connection refused by the connection limits. */
const CONNECTION_RETRY_AFTER_MS = 1000;
/** Refused connections are logged at most once per this interval (with a count). */
const CONNECTION_REFUSAL_LOG_INTERVAL_MS = 1000;
