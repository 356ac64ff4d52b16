import { TransportConfigError } from './errors.js';
import { isValidNodeId } from './codec.js';

/** The path of the peer-RPC WebSocket endpoint; the server routes upgrades for it here. */
export const RAFT_PATH = '/raft';

const ADDRESS_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))?:(\d{1,5})$/;

/**
 * Checks a 'host:port' peer address (IPv6 hosts in brackets: '[::1]:7000') and returns the
 * WebSocket URL the transport dials for it (`wss://` when `secure`, i.e. with peer TLS).
 * @throws TransportConfigError when the address is not host:port with a port in 1..65535.
 */
export function peerUrl(address: string, secure = false): string {
  const m = ADDRESS_RE.exec(address);
  const port = m?.[2] === undefined ? NaN : Number(m[2]);
  if (m === null || m[1] === undefined || !(port >= 1 && port <= 65535)) {
    throw new TransportConfigError(`peer address ${JSON.stringify(address)} must be host:port with a port in 1..65535`);
  }
  return `${secure ? 'wss' : 'ws'}://${m[1]}:${port}${RAFT_PATH}`;
}

/**
 * Validates a peer map and returns it without `selfId` (a caller may pass the whole cluster).
 * @throws TransportConfigError on a bad id or address.
 */
export function normalizePeers(selfId: string, peers: Readonly<Record<string, string>>): Map<string, string> {
  if (typeof peers !== 'object' || peers === null) throw new TransportConfigError('peers must be an object of id -> host:port');
  const out = new Map<string, string>();
  for (const [id, address] of Object.entries(peers)) {
    if (!isValidNodeId(id)) throw new TransportConfigError(`peer id ${JSON.stringify(id)} is not a valid node id`);
    if (typeof address !== 'string') throw new TransportConfigError(`peer ${id}: address must be a string`);
    peerUrl(address);
    if (id !== selfId) out.set(id, address);
  }
  return out;
}
