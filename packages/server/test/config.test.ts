// `quorumkv serve` configuration: founding is explicit and the cluster secret never comes from argv.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, PLACEHOLDER_CLUSTER_SECRET, parseServeConfig } from '../src/config.js';

const SECRET = 'a-cluster-secret-of-some-length';
const BASE = ['--id', 'n1', '--listen', '127.0.0.1:7001', '--data', '/tmp/qkv-unused'];
const PEERS = ['--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002'];
const env = (over: Record<string, string> = {}): NodeJS.ProcessEnv => ({ QKV_CLUSTER_SECRET: SECRET, ...over });
const dir = mkdtempSync(path.join(tmpdir(), 'qkv-config-'));

function refused(argv: string[], e: NodeJS.ProcessEnv): string {
  try {
    parseServeConfig(argv, e);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('founding flag', () => {
  it('defaults to existing: an empty data directory never founds unless told', () => {
    expect(parseServeConfig([...BASE, ...PEERS], env()).initialClusterState).toBe('existing');
    expect(parseServeConfig([...BASE], env()).initialClusterState).toBe('existing');
  });

  it('new needs --peers including this node; --join is an alias of existing and cannot be combined with new', () => {
    expect(parseServeConfig([...BASE, ...PEERS, '--initial-cluster-state', 'new'], env()).initialClusterState).toBe('new');
    expect(refused([...BASE, '--initial-cluster-state', 'new'], env())).toMatch(/needs --peers/);
    expect(refused([...BASE, '--peers', 'n2=127.0.0.1:7002', '--initial-cluster-state', 'new'], env())).toMatch(/must include this node/);
    expect(parseServeConfig([...BASE, '--join'], env()).initialClusterState).toBe('existing');
    expect(refused([...BASE, ...PEERS, '--join', '--initial-cluster-state', 'new'], env())).toMatch(/cannot be combined/);
    expect(refused([...BASE, '--initial-cluster-state', 'fresh'], env())).toMatch(/"new" or "existing"/);
    expect(parseServeConfig([...BASE, ...PEERS], env({ QKV_INITIAL_CLUSTER_STATE: 'new' })).initialClusterState).toBe('new');
  });
});

describe('cluster secret', () => {
  it('is refused on the command line, pointing at the environment and the file', () => {
    for (const argv of [['--cluster-secret', SECRET], [`--cluster-secret=${SECRET}`]]) {
      const m = refused([...BASE, ...argv], env());
      expect(m).toMatch(/visible to every local user/);
      expect(m).toMatch(/QKV_CLUSTER_SECRET/);
      expect(m).toMatch(/--cluster-secret-file/);
    }
  });

  it('comes from QKV_CLUSTER_SECRET or a file (one trailing newline dropped), never both', () => {
    expect(parseServeConfig(BASE, env()).clusterSecret).toBe(SECRET);
    const f = path.join(dir, 'secret');
    writeFileSync(f, `${SECRET}-file\n`, { mode: 0o600 });
    expect(parseServeConfig([...BASE, '--cluster-secret-file', f], {}).clusterSecret).toBe(`${SECRET}-file`);
    expect(parseServeConfig(BASE, { QKV_CLUSTER_SECRET_FILE: f }).clusterSecret).toBe(`${SECRET}-file`);
    expect(refused([...BASE, '--cluster-secret-file', f], env())).toMatch(/one way/);
    expect(refused([...BASE, '--cluster-secret-file', path.join(dir, 'absent')], {})).toMatch(/cannot read/);
  });

  it('is required, at least 16 characters, and not the deploy placeholder', () => {
    expect(refused(BASE, {})).toMatch(/no cluster secret/);
    expect(refused(BASE, { QKV_CLUSTER_SECRET: 'short' })).toMatch(/at least 16/);
    expect(refused(BASE, { QKV_CLUSTER_SECRET: PLACEHOLDER_CLUSTER_SECRET })).toMatch(/placeholder from deploy\/cluster.env.example/);
    expect(refused(BASE, { QKV_CLUSTER_SECRET: 'CHANGEME-to-something-long' })).toMatch(/placeholder/);
  });

  it('is not read from a config file (clusterSecretFile is), and --insecure does not make it optional', () => {
    const withSecret = path.join(dir, 'with-secret.json');
    writeFileSync(withSecret, JSON.stringify({ clusterSecret: SECRET }));
    expect(refused([...BASE, '--config', withSecret], {})).toMatch(/"clusterSecret" in .* is not read/);
    const f = path.join(dir, 'secret2');
    writeFileSync(f, SECRET);
    const withFile = path.join(dir, 'with-file.json');
    writeFileSync(withFile, JSON.stringify({ clusterSecretFile: f }));
    expect(parseServeConfig([...BASE, '--config', withFile], {}).clusterSecret).toBe(SECRET);
    expect(refused([...BASE, '--insecure'], {})).toMatch(/no cluster secret/);
  });
});

describe('catch-up throttle flags', () => {
  it('adaptive by default; fixed on request (flag or environment); anything else is refused', () => {
    expect(parseServeConfig([...BASE], env())).toMatchObject({ catchupThrottle: 'adaptive', catchupLatencyFloorMs: 5 });
    expect(parseServeConfig([...BASE, '--catchup-throttle', 'fixed'], env()).catchupThrottle).toBe('fixed');
    expect(parseServeConfig([...BASE], env({ QKV_CATCHUP_THROTTLE: 'fixed' })).catchupThrottle).toBe('fixed');
    expect(refused([...BASE, '--catchup-throttle', 'auto'], env())).toMatch(/adaptive or fixed/);
    expect(refused([...BASE, '--catchup-latency-floor-ms', '0'], env())).toMatch(/catchup-latency-floor-ms/);
  });
});
