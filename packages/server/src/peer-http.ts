// HTTP requests one node makes to another (a follower forwarding a write or an admin request to
// the leader, recording its zone): plain HTTP on a plaintext cluster, HTTPS with the peer
// certificate under TLS — the same identity rule as the peer links (tls.ts): the remote's
// certificate must come from a peer CA and name the node id the request is meant for.
import http from 'node:http';
import https from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import type { NodeTls } from './tls.js';

/** Keep-alive sockets to other nodes, at most (forwarded requests share them). */
export const PEER_HTTP_SOCKETS_MAX = 256;

/** Requests to other nodes of the cluster. */
export interface PeerHttp {
  /**
   * Starts a request to node `peerId` (`options.host`/`port` are its address); the caller ends it.
   * `options.agent` is replaced by this object's keep-alive agent.
   */
  request(peerId: string, options: http.RequestOptions, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest;
  /** The TLS options of a connection to `peerId` (undefined on a plaintext cluster), for other clients. */
  tlsFor(peerId: string): ConnectionOptions | undefined;
  /** Closes the kept-alive sockets (at node stop). */
  close(): void;
}

/** The PeerHttp of a node: HTTPS with its peer certificate when `tls` is set, else plain HTTP. */
export function peerHttpOf(tls: NodeTls | undefined): PeerHttp {
  if (!tls) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: PEER_HTTP_SOCKETS_MAX });
    return { request: (_peerId, options, onResponse) => http.request({ ...options, agent }, onResponse), tlsFor: () => undefined, close: () => agent.destroy() };
  }
  const agent = new https.Agent({ keepAlive: true, maxSockets: PEER_HTTP_SOCKETS_MAX });
  return {
    // The agent keys sockets by host:port (and servername): a socket is reused only for the same node.
    request: (peerId, options, onResponse) => https.request({ ...options, ...tls.dialOptions(peerId), agent }, onResponse),
    tlsFor: (peerId) => tls.dialOptions(peerId),
    close: () => agent.destroy(),
  };
}
