// The TLS state of a running node: the current certificates (tls-material.ts), the listener's
// options for its one port, the peer checks the transport asks for, the client-certificate check,
// and reload — when a file changes (polled, debounced) or on SIGHUP. A reload builds a whole new
// material first; a bad file is refused with one log line and the old material stays in force.
// Open connections keep the session they negotiated; new ones get the new certificates.
import { unwatchFile, watchFile } from 'node:fs';
import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { TLSSocket, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import type { PeerTls } from '@quorumkv/transport';
import type { Logger } from './logger.js';
import { issuedByOneOf, loadTlsMaterial, sanNames, type TlsFiles, type TlsMaterial } from './tls-material.js';

/**
 * Peers dial with the SNI name `<own id>` + this suffix. It selects the listener's peer context
 * (the peer certificate); clients dial by address or host name and get the client-facing
 * certificate. `.invalid` is reserved (RFC 2606), so no real host is ever called this. The
 * dialler's id in the name is a routing hint only — proxies such as jepsen-lite's can tell
 * directed links apart without decrypting — never trusted: the certificate decides who it is.
 */
export const PEER_SERVERNAME_SUFFIX = '.peer.quorumkv.invalid';

/** The SNI name node `selfId` dials its peers with. */
export function peerServername(selfId: string): string {
  return `${selfId}${PEER_SERVERNAME_SUFFIX}`;
}

/** How often the certificate files are checked for changes, ms. */
export const TLS_WATCH_INTERVAL_MS = 1000;
/** A change is reloaded this long after the last change seen (a rotation writes several files), ms. */
export const TLS_RELOAD_DEBOUNCE_MS = 500;

/** Why a client connection is refused under --client-cert-auth; the HTTP answer's code. */
export const CLIENT_CERT_REQUIRED_CODE = 'QKV_CLIENT_CERT_REQUIRED';

/** A node's TLS: see the file comment. */
export class NodeTls implements PeerTls {
  #material: TlsMaterial;
  #server: HttpsServer | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #watching = false;
  /** The client-certificate verdict of each open connection. */
  readonly #clientVerdicts = new WeakMap<Duplex, string | null>();
  /** Successful reloads since start (qkv_tls_reloads_total{result="ok"}). */
  reloads = 0;
  /** Reloads refused (a bad file; the old certificates stayed), qkv_tls_reloads_total{result="refused"}. */
  reloadsRefused = 0;

  constructor(
    readonly files: TlsFiles,
    private readonly selfId: string,
    private readonly log: Logger,
  ) {
    this.#material = loadTlsMaterial(files, selfId, Date.now());
  }

  /** Options of the node's https server: the client-facing certificate, peers chosen by SNI. */
  serverOptions(): HttpsServerOptions {
    return {
      ...this.#material.server,
      // Peers must present certificates; clients may (and must, with --client-cert-auth). Which
      // CA signed what is checked per path (checkInbound, checkClient), not by the handshake.
      requestCert: true,
      rejectUnauthorized: false,
      // No context for other names keeps the default one (the client-facing certificate).
      SNICallback: (servername, cb) => cb(null, servername.endsWith(PEER_SERVERNAME_SUFFIX) ? this.#material.peerServer : undefined),
    };
  }

  /** When the certificates in use expire, ms since the epoch. */
  notAfterMs(): { server: number; peer: number } {
    return this.#material.notAfterMs;
  }

  /** Attaches the listener so a reload can replace its default context. */
  attach(server: HttpsServer): void {
    this.#server = server;
  }

  /** {@link PeerTls.dialOptions}: the peer certificate, the peer CAs, and the remote must name `peerId`. */
  dialOptions(peerId: string): ConnectionOptions {
    return {
      secureContext: this.#material.peerDial,
      servername: peerServername(this.selfId),
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        if (sanNames(cert.subjectaltname).includes(peerId)) return undefined;
        return new Error(`the certificate of peer ${peerId} does not name it (SAN: ${cert.subjectaltname ?? 'none'})`);
      },
    };
  }

  /** {@link PeerTls.checkInbound}: a valid certificate from a peer CA whose SAN names `peerId`. */
  checkInbound(socket: Duplex, peerId: string): string | null {
    if (!(socket instanceof TLSSocket)) return 'not a TLS connection';
    const leaf = socket.getPeerX509Certificate();
    if (leaf === undefined) return 'no certificate presented';
    if (!socket.authorized) return `certificate not trusted: ${String(socket.authorizationError)}`;
    if (!issuedByOneOf(leaf, this.#material.peerCas)) return `certificate (${leaf.subject.replace(/\n/g, ', ')}) not issued by a CA in --peer-trusted-ca-file`;
    if (!sanNames(leaf.subjectAltName).includes(peerId)) return `certificate names ${leaf.subjectAltName ?? 'nothing'}, not the hello's node id ${peerId}`;
    return null;
  }

  /**
   * Under --client-cert-auth: null when the connection presented a valid certificate from a CA in
   * --trusted-ca-file (or a peer CA: a peer forwarding a client's write presents its peer
   * certificate), else why not. Without --client-cert-auth every TLS client passes.
   */
  checkClient(socket: Duplex): string | null {
    if (!this.files.clientCertAuth) return null;
    // Decided once per connection, like the handshake itself: a keep-alive connection opened
    // before a rotation keeps working (docs/security.md, "Rotating certificates").
    const known = this.#clientVerdicts.get(socket);
    if (known !== undefined) return known;
    const verdict = this.#checkClientCert(socket);
    this.#clientVerdicts.set(socket, verdict);
    return verdict;
  }

  #checkClientCert(socket: Duplex): string | null {
    if (!(socket instanceof TLSSocket)) return 'not a TLS connection';
    const leaf = socket.getPeerX509Certificate();
    if (leaf === undefined) return 'a client certificate is required (--client-cert-auth)';
    if (!socket.authorized) return `client certificate not trusted: ${String(socket.authorizationError)}`;
    const m = this.#material;
    if (!issuedByOneOf(leaf, m.clientCas) && !issuedByOneOf(leaf, m.peerCas)) return 'client certificate not issued by a CA in --trusted-ca-file';
    return null;
  }

  /**
   * Re-reads every file. On success the new certificates serve every new connection and dial; on
   * failure the old ones stay and the reason is logged. Returns whether the reload took.
   */
  reload(reason: string): boolean {
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.files, this.selfId, Date.now());
    } catch (e) {
      this.reloadsRefused++;
      this.log.warn({ reason, err: (e as Error).message }, 'TLS reload refused; keeping the certificates in use');
      return false;
    }
    this.#material = next;
    this.#server?.setSecureContext({ ...next.server });
    this.reloads++;
    this.log.info({ reason, reloads: this.reloads }, 'TLS certificates reloaded');
    return true;
  }

  /** Starts watching the files; a change reloads once the files are quiet for the debounce. */
  watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    for (const file of this.#paths()) {
      watchFile(file, { interval: TLS_WATCH_INTERVAL_MS, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.reload(`${file} changed`), TLS_RELOAD_DEBOUNCE_MS);
        this.#debounce.unref();
      });
    }
  }

  /** Stops watching (at node stop). */
  close(): void {
    clearTimeout(this.#debounce);
    if (this.#watching) for (const file of this.#paths()) unwatchFile(file);
    this.#watching = false;
  }

  #paths(): string[] {
    const f = this.files;
    return [...new Set([f.certFile, f.keyFile, f.peerCertFile, f.peerKeyFile, f.peerTrustedCaFile, ...(f.trustedCaFile ? [f.trustedCaFile] : [])])];
  }
}
