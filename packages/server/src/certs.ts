// `quorumkv certs init`: a development certificate authority and one certificate per node, made
// with the openssl command-line tool (Node 20 cannot create X.509 certificates itself). The node
// certificates name the node id, localhost and 127.0.0.1 in their subject alternative names, so
// the same files serve as peer certificates (the SAN names the node id, docs/security.md) and as
// server certificates for clients dialling 127.0.0.1 or a container name equal to the node id.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from './config.js';

/** Validity of the development certificates, days. */
export const DEV_CERT_DAYS_DEFAULT = 825;
/** Most node certificates one `certs init` makes. */
export const CERTS_NODES_MAX = 64;
/** The client certificate's common name (for --client-cert-auth tests and the CLI). */
export const DEV_CLIENT_CN = 'quorumkv-client';
const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const DOMAIN_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

export const CERTS_USAGE = `usage: quorumkv certs init --nodes n1,n2,n3 --out DIR [--domain D] [--days N] [--force]

Makes a development CA and per-node certificates with openssl:
  DIR/ca.crt, DIR/ca.key          the CA (trust ca.crt: --trusted-ca-file, --peer-trusted-ca-file, --cacert)
  DIR/ID.crt, DIR/ID.key          one per node: SAN DNS:ID, DNS:localhost, IP:127.0.0.1
                                  (and DNS:ID.D with --domain D, e.g. quorumkv.default.svc)
                                  (use them as --cert-file/--key-file and --peer-cert-file/--peer-key-file)
  DIR/client.crt, DIR/client.key  a client certificate (CN ${DEV_CLIENT_CN}) for --client-cert-auth
For development and tests only: the CA key sits next to the certificates.`;

/** Options of {@link initDevCerts}. */
export interface DevCertsOptions {
  nodes: string[];
  outDir: string;
  days?: number;
  /** Replace files already in outDir. */
  force?: boolean;
  /** Also name ID.domain in each node certificate (a DNS name clients dial, e.g. a Kubernetes service). */
  domain?: string;
}

/** Paths written by {@link initDevCerts}. */
export interface DevCerts {
  caCert: string;
  caKey: string;
  nodes: Record<string, { cert: string; key: string }>;
  client: { cert: string; key: string };
}

/**
 * Writes a development CA, one certificate per node and one client certificate into `outDir`.
 * @throws ConfigError on a bad node id, existing files without `force`, or a failing openssl.
 */
export function initDevCerts(o: DevCertsOptions): DevCerts {
  if (o.nodes.length === 0 || o.nodes.length > CERTS_NODES_MAX) throw new ConfigError(`--nodes: give 1..${CERTS_NODES_MAX} node ids`);
  for (const id of o.nodes) if (!NODE_ID_RE.test(id)) throw new ConfigError(`--nodes: bad node id "${id}"`);
  const days = String(o.days ?? DEV_CERT_DAYS_DEFAULT);
  mkdirSync(o.outDir, { recursive: true });
  const out = (name: string) => path.join(o.outDir, name);
  if (!o.force && existsSync(out('ca.crt'))) throw new ConfigError(`${out('ca.crt')} exists; pass --force to replace the certificates in ${o.outDir}`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', out('ca.key'), '-out', out('ca.crt'),
    '-days', days, '-subj', '/CN=quorumkv development CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const nodes: DevCerts['nodes'] = {};
  if (o.domain !== undefined && !DOMAIN_RE.test(o.domain)) throw new ConfigError(`--domain: bad DNS name "${o.domain}"`);
  for (const id of o.nodes) {
    const extra = o.domain ? `,DNS:${id}.${o.domain}` : '';
    nodes[id] = issue(o.outDir, id, `/CN=${id}`, `subjectAltName=DNS:${id}${extra},DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`, days);
  }
  const client = issue(o.outDir, 'client', `/CN=${DEV_CLIENT_CN}`, `extendedKeyUsage=clientAuth\n`, days);
  return { caCert: out('ca.crt'), caKey: out('ca.key'), nodes, client };
}

/** Makes NAME.key and NAME.crt signed by the CA in `dir`, with the given v3 extensions. */
function issue(dir: string, name: string, subject: string, extensions: string, days: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n${extensions}`);
  try {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', subject]);
    openssl(['x509', '-req', '-in', csr, '-CA', path.join(dir, 'ca.crt'), '-CAkey', path.join(dir, 'ca.key'), '-CAcreateserial',
      '-out', cert, '-days', days, '-extfile', ext]);
  } finally {
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  return { cert, key };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') throw new ConfigError('openssl is not installed (certs init runs the openssl command-line tool)');
    throw new ConfigError(`openssl ${args[0]} failed: ${err.stderr?.toString('utf8').trim() ?? err.message}`);
  }
}

/** `quorumkv certs init …`; returns the exit code. */
export function runCerts(argv: string[]): number {
  const [sub, ...rest] = argv;
  if (sub !== 'init' || rest.includes('--help')) {
    console.log(CERTS_USAGE);
    return sub === 'init' || sub === '--help' ? 0 : 2;
  }
  let values: { nodes?: string; out?: string; days?: string; force?: boolean; domain?: string };
  try {
    ({ values } = parseArgs({ args: rest, options: { nodes: { type: 'string' }, out: { type: 'string' }, days: { type: 'string' }, force: { type: 'boolean' }, domain: { type: 'string' } }, strict: true }));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (!values.nodes || !values.out) throw new ConfigError('certs init needs --nodes ID,ID,... and --out DIR');
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && !(Number.isInteger(days) && days >= 1 && days <= 3650)) throw new ConfigError('--days must be an integer in [1, 3650]');
  const made = initDevCerts({ nodes: values.nodes.split(',').map((s) => s.trim()).filter(Boolean), outDir: values.out, force: values.force === true, ...(days ? { days } : {}), ...(values.domain ? { domain: values.domain } : {}) });
  console.log(`wrote ${made.caCert} and certificates for ${Object.keys(made.nodes).join(', ')} and a client into ${values.out}`);
  return 0;
}
