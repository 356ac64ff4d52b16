// Docker HEALTHCHECK: exits 0 when this node answers GET /health on its own port, else 1.
// The slim image has no curl or wget, so Node does the request. The port comes from QKV_LISTEN.
const TIMEOUT_MS = 2000;
const listen = process.env.QKV_LISTEN ?? '0.0.0.0:7001';
const port = Number(listen.slice(listen.lastIndexOf(':') + 1)) || 7001;
try {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  process.exit(res.ok ? 0 : 1);
} catch (e) {
  console.error(`health check failed: ${e?.message ?? e}`);
  process.exit(1);
}
