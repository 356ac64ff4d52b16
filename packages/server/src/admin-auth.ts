// Admin endpoints answer only callers that prove the cluster secret, even with users and roles
// off: without it, anyone who reaches the HTTP port could move leadership, remove voters, set the
// snapshot rate to 1 B/s, compact history or download a backup of every key.
//
// The proof is `Authorization: Bearer <token>` where the token is HMAC-SHA256(secret, label)
// (@quorumkv/transport admin-token.ts). Every tool in the repository that calls an admin endpoint
// sends it: the CLI (which reads the secret the way `serve` does), a follower relaying the request
// to its leader (it copies the caller's header), a node recording its own zone, the test harness
// and jepsen-lite.
import type { IncomingMessage } from 'node:http';
import { QuorumKvError } from '@quorumkv/protocol';
import { ADMIN_AUTH_HEADER, checkAdminAuthorization } from '@quorumkv/transport';

/** Code of a request to an admin endpoint without a valid admin token (HTTP 401). */
export const AUTH_FAILED_CODE = 'QKV_AUTH_FAILED';

/** An admin request without a valid proof of the cluster secret. */
export class AdminAuthError extends QuorumKvError {
  constructor(message: string) {
    super(AUTH_FAILED_CODE, message);
  }
}

/** Path prefix of the admin endpoints (admin.ts). */
const ADMIN_PATH_PREFIX = '/v1/admin/';
/** Admin operations served outside /v1/admin/ (compaction changes every node's history). */
const ADMIN_PATHS_ELSEWHERE: ReadonlySet<string> = new Set(['/v1/compact']);

/** True when `pathname` names an admin operation that needs the admin token. */
export function isAdminPath(pathname: string): boolean {
  return pathname.startsWith(ADMIN_PATH_PREFIX) || ADMIN_PATHS_ELSEWHERE.has(pathname);
}

const HOW_TO =
  'send "Authorization: Bearer <admin token>", the token derived from the cluster secret (the quorumkv CLI sends it when it finds the secret: ' +
  'QKV_CLUSTER_SECRET, --cluster-secret-file or QKV_CLUSTER_SECRET_FILE, or ./data/cluster-secret; see docs/security.md)';

/**
 * Throws {@link AdminAuthError} unless the request carries the admin token of `clusterSecret`.
 * The message never repeats what the caller sent.
 */
export function requireAdminToken(req: IncomingMessage, clusterSecret: string): void {
  const refusal = checkAdminAuthorization(req.headers[ADMIN_AUTH_HEADER], clusterSecret);
  switch (refusal) {
    case null:
      return;
    case 'missing':
      throw new AdminAuthError(`admin endpoints need the cluster's admin token: ${HOW_TO}`);
    case 'malformed':
      throw new AdminAuthError(`the Authorization header is not "Bearer" and a 64-hex-digit admin token: ${HOW_TO}`);
    case 'wrong':
      throw new AdminAuthError('the admin token does not match this cluster\'s secret');
  }
}

/** The caller's Authorization header, for relaying an admin request to the leader unchanged. */
export function relayedAuthorization(req: IncomingMessage): Record<string, string> {
  const v = req.headers[ADMIN_AUTH_HEADER];
  return typeof v === 'string' ? { [ADMIN_AUTH_HEADER]: v } : {};
}
