// Assembles a node: storage + core (node.ts), peer transport, client WebSocket endpoint and the
// HTTP API on ONE port, routed by path. Also the graceful stop.
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { attachClientEndpoint, type ClientEndpoint } from './client-endpoint.js';
import type { ServeConfig } from './config.js';
import { HttpApi } from './http-api.js';
import { NodeKvService } from './kv-service.js';
import { coreLogger, createLogger, type Logger } from './logger.js';
import { NodeMetrics } from './metrics.js';
import { QuorumKvNode } from './node.js';
import { SnapshotManager } from './snapshots.js';
import { AdminApi } from './admin.js';

export interface RunningServer {
  node: QuorumKvNode;
  http: http.Server;
  /** The bound port (useful with --listen HOST:0 in tests). */
  port: number;
  stop(): Promise<void>;
}

/** Starts a node and listens; resolves once it accepts connections. */
export async function startServer(cfg: ServeConfig, opts: { logger?: Logger } = {}): Promise<RunningServer> {
  const log = opts.logger ?? createLogger(cfg.id, cfg.logLevel);
  const metrics = new NodeMetrics();
  const node = await QuorumKvNode.open(cfg, log, metrics);
  const snapshots = new SnapshotManager(
    node,
    { dial: (peer) => node.transport.dialSnapshot(peer) },
    {
      ...(cfg.faultSnapshotCorruptEvery > 0 ? { corruptEveryNthChunk: cfg.faultSnapshotCorruptEvery } : {}),
      ...(cfg.faultSnapshotCutAfterChunks > 0 ? { cutAfterChunks: cfg.faultSnapshotCutAfterChunks } : {}),
    },
  );
  metrics.registerTransport(() => node.transport.stats());
  node.snapshotHooks = snapshots;
  node.snapshotStatus = () => snapshots.status();
  node.snapshotAcceptor = (peer, ws) => snapshots.acceptConnection(peer, ws);
  const api = new HttpApi(node);
  api.admin = new AdminApi(node, snapshots);
  const endpoint: ClientEndpoint = attachClientEndpoint({
    service: new NodeKvService(node),
    maxKeyBytes: cfg.maxKeyBytes,
    maxValueBytes: cfg.maxValueBytes,
    maxFrameBytes: Math.max(2 * 1024 * 1024, cfg.maxValueBytes + cfg.maxKeyBytes + 64 * 1024),
    defaultTimeoutMs: cfg.requestTimeoutMs,
    logger: coreLogger(log.child({ component: 'client-endpoint' })),
  });
  const server = http.createServer({ keepAliveTimeout: 30_000 }, api.handle);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/raft') node.transport.handleUpgrade(req, socket, head);
    else if (path === '/client') endpoint.handleUpgrade(req, socket, head);
    else {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    }
  });
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
  node.start();
  log.info({ listen: `${cfg.host}:${port}`, peers: cfg.peers.map((p) => `${p.id}=${p.address}`), zone: cfg.zone }, 'node listening');
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info({}, 'stopping: no new requests, flushing, closing storage');
      server.close();
      await endpoint.close().catch(() => undefined);
      api.close();
      await node.stop();
      server.closeAllConnections();
      log.info({}, 'stopped');
    })());
  return { node, http: server, port, stop };
}
