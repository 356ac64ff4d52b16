// Reading and checking the TLS files of a node (etcd's flag names: --cert-file, --key-file,
// --trusted-ca-file, --peer-cert-file, --peer-key-file, --peer-trusted-ca-file) into the secure
// contexts the node's one port and its peer dials use. Every problem is a ConfigError that names
// the flag and the file; nothing here keeps state (tls.ts swaps whole materials on reload).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls, { type SecureContext } from 'node:tls';
import { ConfigError } from './config.js';

/** The TLS settings of a node: file paths, and whether clients must present certificates. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle that signs client certificates; required with clientCertAuth. */
  trustedCaFile: string | undefined;
  /** Clients (HTTP and WebSocket /client) must present a certificate the trusted CAs signed. */
  clientCertAuth: boolean;
  peerCertFile: string;
  peerKeyFile: string;
  peerTrustedCaFile: string;
}

/** Largest certificate, key or CA file read, bytes (a bundle of many CAs fits easily). */
export const TLS_FILE_BYTES_MAX = 1024 * 1024;

/** One consistent set of certificates, keys and CAs, loaded and checked together. */
export interface TlsMaterial {
  /** Client-facing: --cert-file/--key-file; verifies client certificates against both CA sets. */
  readonly server: tls.SecureContextOptions;
  /** Peer-facing (chosen by the peer SNI name): --peer-cert-file/--peer-key-file. */
  readonly peerServer: SecureContext;
  /** Outgoing peer dials: presents the peer certificate, trusts only the peer CAs. */
  readonly peerDial: SecureContext;
  /** CAs that may sign a peer's certificate. */
  readonly peerCas: readonly X509Certificate[];
  /** CAs that may sign a client's certificate (empty without --trusted-ca-file). */
  readonly clientCas: readonly X509Certificate[];
  /** When the client-facing and the peer certificate expire, ms since the epoch. */
  readonly notAfterMs: { server: number; peer: number };
}

/**
 * Reads and checks every file, then builds the secure contexts.
 * @throws ConfigError naming the flag: missing or unreadable file, a key that does not parse or
 *   does not match its certificate, an expired certificate, a CA file with no certificate, a
 *   peer certificate whose subject alternative names do not name `selfId`.
 */
export function loadTlsMaterial(files: TlsFiles, selfId: string, nowMs: number): TlsMaterial {
  const cert = readPem('--cert-file', files.certFile);
  const key = readPem('--key-file', files.keyFile);
  const peerCert = readPem('--peer-cert-file', files.peerCertFile);
  const peerKey = readPem('--peer-key-file', files.peerKeyFile);
  const serverLeaf = checkPair('--cert-file', files.certFile, cert, '--key-file', key, nowMs);
  const peerLeaf = checkPair('--peer-cert-file', files.peerCertFile, peerCert, '--peer-key-file', peerKey, nowMs);
  if (!sanNames(peerLeaf.subjectAltName).includes(selfId)) {
    throw new ConfigError(
      `--peer-cert-file ${files.peerCertFile}: its subject alternative names (${peerLeaf.subjectAltName ?? 'none'}) do not name this node's id "${selfId}"; peers would refuse it`,
    );
  }
  const peerCaPem = readPem('--peer-trusted-ca-file', files.peerTrustedCaFile);
  const peerCas = parseBundle('--peer-trusted-ca-file', files.peerTrustedCaFile, peerCaPem);
  const clientCaPem = files.trustedCaFile === undefined ? '' : readPem('--trusted-ca-file', files.trustedCaFile);
  const clientCas = files.trustedCaFile === undefined ? [] : parseBundle('--trusted-ca-file', files.trustedCaFile, clientCaPem);
  // One port serves peers and clients, and OpenSSL keeps the verify store of the context chosen
  // first: both listener contexts trust both CA sets, and tls.ts checks which CA signed a
  // certificate for the path it reaches (a client CA never admits a peer).
  const anyCa = [...peerCas, ...clientCas].map((c) => c.toString());
  try {
    const server = { cert, key, ca: anyCa };
    tls.createSecureContext(server);
    return {
      server,
      peerServer: tls.createSecureContext({ cert: peerCert, key: peerKey, ca: anyCa }),
      peerDial: tls.createSecureContext({ cert: peerCert, key: peerKey, ca: peerCas.map((c) => c.toString()) }),
      peerCas,
      clientCas,
      notAfterMs: { server: Date.parse(serverLeaf.validTo), peer: Date.parse(peerLeaf.validTo) },
    };
  } catch (e) {
    throw new ConfigError(`TLS files are unusable together: ${(e as Error).message}`);
  }
}

function readPem(flag: string, file: string): string {
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.byteLength > TLS_FILE_BYTES_MAX) throw new Error(`larger than ${TLS_FILE_BYTES_MAX} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    throw new ConfigError(`${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(`${flag}: ${file} holds no PEM block`);
  return text;
}

/** Parses the leaf certificate and the key and checks that they belong together and are valid now. */
function checkPair(certFlag: string, certFile: string, certPem: string, keyFlag: string, keyPem: string, nowMs: number): X509Certificate {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
  } catch (e) {
    throw new ConfigError(`${certFlag}: ${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new ConfigError(`${keyFlag}: cannot parse the private key (encrypted keys are not supported): ${(e as Error).message}`);
  }
  if (!leaf.checkPrivateKey(key)) throw new ConfigError(`${keyFlag} does not match ${certFlag} ${certFile}: the key is for another certificate`);
  if (Date.parse(leaf.validTo) < nowMs) throw new ConfigError(`${certFlag}: ${certFile} expired on ${leaf.validTo}`);
  if (Date.parse(leaf.validFrom) > nowMs) throw new ConfigError(`${certFlag}: ${certFile} is not valid before ${leaf.validFrom}`);
  return leaf;
}

/** Every certificate of a PEM bundle. */
function parseBundle(flag: string, file: string, pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${flag}: ${file} holds no certificate`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new ConfigError(`${flag}: ${file} holds a certificate that does not parse: ${(e as Error).message}`);
    }
  });
}

/** The DNS names of a subject-alternative-name string ("DNS:n1, DNS:localhost, IP Address:127.0.0.1"). */
export function sanNames(san: string | undefined): string[] {
  if (!san) return [];
  return san
    .split(/,\s*/)
    .filter((part) => part.startsWith('DNS:'))
    .map((part) => part.slice(4));
}

/** True when `leaf` was issued and signed by one of `cas`. */
export function issuedByOneOf(leaf: X509Certificate, cas: readonly X509Certificate[]): boolean {
  return cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
}
