// HTTP requests from the harness to a node: `fetch` on a plaintext cluster; on a TLS cluster an
// HTTPS request trusting the run's development CA (Node 20's `fetch` takes no CA). The answer is a
// WHATWG `Response` either way, with the whole body read (the harness's answers are small).
import https from 'node:https';

/** Largest answer body read from a node, bytes (status, state hash, admin answers). */
export const NODE_ANSWER_BYTES_MAX = 1024 * 1024;

/** A request to a node. */
export interface NodeCall {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

/** `http(s)://endpoint{path}`: HTTPS trusting `ca` when given, else plain HTTP. */
export function nodeFetch(endpoint: string, path: string, call: NodeCall, ca: Buffer | undefined): Promise<Response> {
  if (ca === undefined) return fetch(`http://${endpoint}${path}`, call);
  const url = new URL(`https://${endpoint}${path}`);
  return new Promise<Response>((resolve, reject) => {
    const req = https.request(url, { method: call.method ?? 'GET', headers: call.headers, ca, ...(call.signal ? { signal: call.signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > NODE_ANSWER_BYTES_MAX) res.destroy(new Error(`answer from ${endpoint} larger than ${NODE_ANSWER_BYTES_MAX} bytes`));
        else chunks.push(c);
      });
      res.once('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 502 })));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(call.body);
  });
}
