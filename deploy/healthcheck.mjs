// Docker HEALTHCHECK: exits 0 when this node answers GET /health on its own port, else 1.
// The slim image has no curl or wget, so Node does the request. The port comes from QKV_LISTEN.
// With TLS configured (QKV_CERT_FILE) it asks over HTTPS and presents the node's peer certificate
// (accepted under --client-cert-auth too); it does not verify the server's name: it asks itself.
import { readFileSync } from 'node:fs';
import https from 'node:https';

const TIMEOUT_MS = 2000;
const listen = process.env.QKV_LISTEN ?? '0.0.0.0:7001';
const port = Number(listen.slice(listen.lastIndexOf(':') + 1)) || 7001;

function httpsHealth() {
  const env = process.env;
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path: '/health',
        rejectUnauthorized: false,
        cert: readFileSync(env.QKV_PEER_CERT_FILE ?? env.QKV_CERT_FILE),
        key: readFileSync(env.QKV_PEER_KEY_FILE ?? env.QKV_KEY_FILE),
        timeout: TIMEOUT_MS,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

try {
  const ok = process.env.QKV_CERT_FILE
    ? await httpsHealth()
    : (await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).ok;
  process.exit(ok ? 0 : 1);
} catch (e) {
  console.error(`health check failed: ${e?.message ?? e}`);
  process.exit(1);
}
