// The admin bearer token: what an operator's tool (the CLI, a test harness, jepsen-lite, a node
// relaying an admin request to its leader) sends to reach the admin endpoints when users and
// roles are off. It is derived from the cluster secret with HMAC-SHA256 under a fixed label, so
//   - whoever holds the secret (every node, the CLI reading QKV_CLUSTER_SECRET or the secret
//     file) can compute it, and nothing else has to be distributed;
//   - the token itself is not the secret: a captured token opens the admin endpoints but cannot
//     prove the secret in a peer hello (whose MAC covers a timestamp and a nonce).
// The check compares in constant time.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries the token: `Authorization: Bearer <token>`. */
export const ADMIN_AUTH_HEADER = 'authorization';
/** The HMAC label; a new version of the scheme changes it. */
const ADMIN_TOKEN_LABEL = 'quorumkv admin token v1';
/** Length of a token: hex of a SHA-256 digest. */
const ADMIN_TOKEN_HEX_LENGTH = 64;

/**
 * The admin token for a cluster secret (64 hex digits).
 *
 * @example
 *   fetch(url, { headers: { authorization: adminAuthorization(secret) } })
 */
export function adminToken(clusterSecret: string): string {
  return createHmac('sha256', clusterSecret).update(ADMIN_TOKEN_LABEL).digest('hex');
}

/** The value of the `Authorization` header for a cluster secret: `Bearer <token>`. */
export function adminAuthorization(clusterSecret: string): string {
  return `Bearer ${adminToken(clusterSecret)}`;
}

/** Why {@link checkAdminAuthorization} refused a request; `null` when it accepted it. */
export type AdminAuthRefusal = 'missing' | 'malformed' | 'wrong' | null;

/**
 * Checks an `Authorization` header value against the cluster secret, in constant time in the
 * token. Never echoes the header (it may hold a secret) — the caller reports only the refusal.
 */
export function checkAdminAuthorization(header: string | string[] | undefined, clusterSecret: string): AdminAuthRefusal {
  if (header === undefined || header === '') return 'missing';
  if (typeof header !== 'string') return 'malformed';
  const m = /^Bearer ([0-9a-f]+)$/i.exec(header.trim());
  if (!m || m[1]!.length !== ADMIN_TOKEN_HEX_LENGTH) return 'malformed';
  const given = Buffer.from(m[1]!.toLowerCase(), 'hex');
  const expected = Buffer.from(adminToken(clusterSecret), 'hex');
  return timingSafeEqual(given, expected) ? null : 'wrong';
}
