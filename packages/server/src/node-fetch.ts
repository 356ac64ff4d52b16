// One HTTP(S) request to a node, answered as a WHATWG `Response` (what the CLI commands and the
// cluster view read). Plain `fetch` without TLS; with TLS, `https.request` — Node 20's `fetch`
// takes no CA or client certificate — with the caller's TLS options: the CLI's --cacert/--cert/
// --key (server names verified as usual), or a node's peer dial options (tls.ts).
import https from 'node:https';
import { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { splitHostPort } from './http-api.js';

/** What a request to a node may carry. */
export interface NodeRequestInit {
  method?: string;
  body?: string | Uint8Array;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** Statuses whose `Response` must have a null body. */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * Sends `init` to `http(s)://address{path}`: HTTPS with `tls` when given, else plain HTTP.
 * Rejects on a network or TLS error (an untrusted certificate, a name mismatch) or an abort.
 */
export function fetchNode(address: string, path: string, init: NodeRequestInit = {}, tls?: ConnectionOptions): Promise<Response> {
  if (!tls) {
    return fetch(`http://${address}${path}`, {
      method: init.method ?? 'GET',
      ...(init.body !== undefined ? { body: init.body } : {}),
      ...(init.signal ? { signal: init.signal } : {}),
      ...(init.headers ? { headers: init.headers } : {}),
    });
  }
  const [host, port] = splitHostPort(address);
  const method = init.method ?? 'GET';
  const body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
  return new Promise<Response>((resolve, reject) => {
    const req = https.request(
      {
        ...tls,
        host,
        port,
        method,
        path,
        headers: { ...init.headers, ...(body ? { 'content-length': body.byteLength } : {}) },
        ...(init.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        const headers = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        const status = res.statusCode ?? 502;
        const stream = NULL_BODY_STATUSES.has(status) || method === 'HEAD' ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
        if (stream === null) res.resume();
        resolve(new Response(stream, { status, headers }));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}
