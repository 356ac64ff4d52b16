// The TLS metrics of a node: reloads (taken or refused), failed handshakes, and when the
// certificates in use expire — so an alert can fire weeks before a certificate runs out.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { NodeTls } from './tls.js';

/** Registers the TLS metrics; returns the handshake-failure counter the listener increments. */
export function registerTlsMetrics(registry: Registry, tls: NodeTls): { handshakeFailed(): void } {
  new Counter({
    name: 'qkv_tls_reloads_total',
    help: 'Re-reads of the TLS files: ok = new certificates in use, refused = a bad file, the old ones kept',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'ok' }, tls.reloads);
      this.inc({ result: 'refused' }, tls.reloadsRefused);
    },
  });
  new Gauge({
    name: 'qkv_tls_certificate_expiry_timestamp_seconds',
    help: 'When the certificate in use expires (unix seconds): cert = server (clients) or peer',
    labelNames: ['cert'],
    registers: [registry],
    collect() {
      const t = tls.notAfterMs();
      this.set({ cert: 'server' }, Math.floor(t.server / 1000));
      this.set({ cert: 'peer' }, Math.floor(t.peer / 1000));
    },
  });
  const failures = new Counter({
    name: 'qkv_tls_handshake_failures_total',
    help: 'Connections closed because the TLS handshake failed (plain HTTP to the TLS port, an untrusted client)',
    registers: [registry],
  });
  return { handshakeFailed: () => failures.inc() };
}
