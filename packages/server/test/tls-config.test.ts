// TLS settings: etcd's flag names (and their env/config twins) are all-or-none, the safe-by-default
// rule refuses plaintext off loopback unless --insecure, and the files are checked at start with
// errors that name the flag (missing, unreadable key, key/cert mismatch, a peer certificate that
// does not name the node). A reload with a bad file keeps the certificates in use.
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDevCerts, type DevCerts } from '../src/certs.js';
import { ConfigError, parseServeConfig } from '../src/config.js';
import type { Logger } from '../src/logger.js';
import { NodeTls, peerServername } from '../src/tls.js';
import { loadTlsMaterial, type TlsFiles } from '../src/tls-material.js';

const SECRET = 'a-cluster-secret-of-some-length';
const BASE = ['--id', 'n1', '--data', '/tmp/qkv-unused'];
const env = { QKV_CLUSTER_SECRET: SECRET };

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

let dir: string;
let certs: DevCerts;
let other: DevCerts;
const tlsFlags = (id: string, c: DevCerts = certs): string[] => [
  '--cert-file', c.nodes[id]!.cert, '--key-file', c.nodes[id]!.key,
  '--peer-cert-file', c.nodes[id]!.cert, '--peer-key-file', c.nodes[id]!.key, '--peer-trusted-ca-file', c.caCert,
];
const files = (id: string, over: Partial<TlsFiles> = {}): TlsFiles => ({
  certFile: certs.nodes[id]!.cert, keyFile: certs.nodes[id]!.key, trustedCaFile: certs.caCert, clientCertAuth: false,
  peerCertFile: certs.nodes[id]!.cert, peerKeyFile: certs.nodes[id]!.key, peerTrustedCaFile: certs.caCert, ...over,
});

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-tls-config-'));
  certs = initDevCerts({ nodes: ['n1', 'n2'], outDir: path.join(dir, 'a') });
  other = initDevCerts({ nodes: ['n1'], outDir: path.join(dir, 'b') });
});
afterAll(() => undefined);

describe('TLS flags and the safe-by-default rule', () => {
  it('refuses plaintext on a non-loopback address unless --insecure, in one line naming the flags', () => {
    const m = refused(() => parseServeConfig([...BASE, '--listen', '0.0.0.0:7001'], env));
    expect(m).toMatch(/refusing to listen on 0\.0\.0\.0 without TLS/);
    expect(m).toMatch(/--cert-file/);
    expect(m).toMatch(/--insecure/);
    expect(m).not.toMatch(/\n/);
    expect(parseServeConfig([...BASE, '--listen', '0.0.0.0:7001', '--insecure'], env).insecure).toBe(true);
    expect(parseServeConfig([...BASE, '--listen', '0.0.0.0:7001'], { ...env, QKV_INSECURE: '1' }).tls).toBeUndefined();
    for (const host of ['127.0.0.1', '127.3.2.1', 'localhost', '[::1]']) expect(parseServeConfig([...BASE, '--listen', `${host}:7001`], env).tls).toBeUndefined();
    expect(parseServeConfig([...BASE, '--listen', '0.0.0.0:7001', ...tlsFlags('n1')], env).tls?.certFile).toBe(certs.nodes.n1!.cert);
  });

  it('takes all five files or none; --client-cert-auth needs --trusted-ca-file; env twins work', () => {
    const listen = ['--listen', '127.0.0.1:7001'];
    expect(refused(() => parseServeConfig([...BASE, ...listen, '--cert-file', 'x', '--key-file', 'y'], env))).toMatch(/also give --peer-cert-file, --peer-key-file, --peer-trusted-ca-file/);
    expect(refused(() => parseServeConfig([...BASE, ...listen, ...tlsFlags('n1'), '--client-cert-auth'], env))).toMatch(/--client-cert-auth needs --trusted-ca-file/);
    expect(refused(() => parseServeConfig([...BASE, ...listen, '--client-cert-auth'], env))).toMatch(/need TLS/);
    const fromEnv = parseServeConfig([...BASE, ...listen], {
      ...env, QKV_CERT_FILE: 'c', QKV_KEY_FILE: 'k', QKV_PEER_CERT_FILE: 'pc', QKV_PEER_KEY_FILE: 'pk', QKV_PEER_TRUSTED_CA_FILE: 'ca',
      QKV_TRUSTED_CA_FILE: 'tca', QKV_CLIENT_CERT_AUTH: 'true',
    });
    expect(fromEnv.tls).toEqual({ certFile: 'c', keyFile: 'k', trustedCaFile: 'tca', clientCertAuth: true, peerCertFile: 'pc', peerKeyFile: 'pk', peerTrustedCaFile: 'ca' });
    const cfgFile = path.join(dir, 'tls.json');
    writeFileSync(cfgFile, JSON.stringify({ certFile: 'c', keyFile: 'k', peerCertFile: 'pc', peerKeyFile: 'pk', peerTrustedCaFile: 'ca' }));
    expect(parseServeConfig([...BASE, ...listen, '--config', cfgFile], env).tls?.peerTrustedCaFile).toBe('ca');
  });
});

describe('TLS files are checked at start', () => {
  it('names the flag of a missing file, a key that does not parse, and a key for another certificate', () => {
    expect(refused(() => loadTlsMaterial(files('n1', { certFile: path.join(dir, 'nope.crt') }), 'n1', Date.now()))).toMatch(/--cert-file: cannot read .*nope\.crt/);
    const garbage = path.join(dir, 'garbage.key');
    writeFileSync(garbage, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
    expect(refused(() => loadTlsMaterial(files('n1', { keyFile: garbage }), 'n1', Date.now()))).toMatch(/--key-file: cannot parse the private key/);
    expect(refused(() => loadTlsMaterial(files('n1', { peerKeyFile: certs.nodes.n2!.key }), 'n1', Date.now()))).toMatch(/--peer-key-file does not match --peer-cert-file/);
    expect(refused(() => loadTlsMaterial(files('n1', { peerTrustedCaFile: certs.nodes.n1!.key }), 'n1', Date.now()))).toMatch(/--peer-trusted-ca-file: .* holds no certificate/);
  });

  it('refuses a peer certificate that does not name this node id, and an expired one', () => {
    expect(refused(() => loadTlsMaterial(files('n1'), 'n2', Date.now()))).toMatch(/do not name this node's id "n2"/);
    expect(refused(() => loadTlsMaterial(files('n1'), 'n1', Date.now() + 10_000 * 86_400_000))).toMatch(/--cert-file: .* expired/);
    expect(loadTlsMaterial(files('n1'), 'n1', Date.now()).peerCas).toHaveLength(1);
  });
});

describe('reload', () => {
  const lines: string[] = [];
  const log = { info: (_f: unknown, m: string) => lines.push(`info ${m}`), warn: (f: { err?: string }, m: string) => lines.push(`warn ${m}: ${f.err}`) } as unknown as Logger;

  it('keeps the old certificates when a new file is bad, and takes good ones', () => {
    const live = path.join(dir, 'live');
    initDevCerts({ nodes: ['n1'], outDir: live });
    const f = files('n1', { certFile: path.join(live, 'n1.crt'), keyFile: path.join(live, 'n1.key'), peerCertFile: path.join(live, 'n1.crt'), peerKeyFile: path.join(live, 'n1.key'), peerTrustedCaFile: path.join(live, 'ca.crt') });
    const t = new NodeTls(f, 'n1', log);
    const before = t.dialOptions('n2').secureContext;
    copyFileSync(other.nodes.n1!.cert, f.peerCertFile); // the key in place is not this certificate's
    expect(t.reload('test')).toBe(false);
    expect(lines.at(-1)).toMatch(/^warn TLS reload refused; keeping the certificates in use: --key-file does not match/);
    expect(t.dialOptions('n2').secureContext).toBe(before);
    copyFileSync(other.nodes.n1!.key, f.peerKeyFile);
    copyFileSync(other.caCert, f.peerTrustedCaFile);
    expect(t.reload('test')).toBe(true);
    expect(t.dialOptions('n2').secureContext).not.toBe(before);
    expect(t.reloads).toBe(1);
    expect(t.dialOptions('n2').servername).toBe(peerServername('n1')); // the dialler's id: a routing hint
  });

  it('a dial accepts only a remote certificate that names the peer it meant', () => {
    const t = new NodeTls(files('n1'), 'n1', log);
    const check = t.dialOptions('n2').checkServerIdentity!;
    expect(check('127.0.0.1', { subjectaltname: 'DNS:n2, DNS:localhost, IP Address:127.0.0.1' } as never)).toBeUndefined();
    expect(check('127.0.0.1', { subjectaltname: 'DNS:n3, DNS:localhost, IP Address:127.0.0.1' } as never)?.message).toMatch(/does not name it/);
    expect(check('127.0.0.1', { subjectaltname: 'DNS:xn2' } as never)).toBeInstanceOf(Error);
  });
});
