// Where the CLI finds the cluster secret to prove on admin requests (admin-auth.ts): the same
// places `quorumkv serve` reads it — QKV_CLUSTER_SECRET, or a file named by --cluster-secret-file
// or QKV_CLUSTER_SECRET_FILE — and, for the local cluster of `pnpm start` / `quorumkv dev`, the
// secret that command keeps in ./data/cluster-secret. Never a flag holding the secret itself.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { adminAuthorization } from '@quorumkv/transport';
import { clusterSecret } from './config.js';

/** The dev cluster's secret file under its default data directory (dev.ts writes it). */
export const DEV_CLUSTER_SECRET_PATH = join('data', 'cluster-secret');

/**
 * The headers that authenticate the CLI's admin requests: `{ authorization }` when a cluster
 * secret is found, `{}` when none is (the node then answers 401 QKV_AUTH_FAILED saying what to
 * set). A secret that is set but unusable (unreadable file, too short) is a ConfigError.
 */
export function cliAdminHeaders(fileFlag: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Record<string, string> {
  const file = nonEmpty(fileFlag) ?? nonEmpty(env.QKV_CLUSTER_SECRET_FILE);
  if (file !== undefined || nonEmpty(env.QKV_CLUSTER_SECRET) !== undefined) {
    return { authorization: adminAuthorization(clusterSecret(env, file)) };
  }
  const dev = join(cwd, DEV_CLUSTER_SECRET_PATH);
  if (existsSync(dev)) return { authorization: adminAuthorization(clusterSecret({}, dev)) };
  return {};
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
