// A follower forwards writes to the leader. When that goes wrong, the answer must say truthfully
// whether the leader may have acted: before the request was fully sent it cannot have (it reads
// the whole body before proposing) — QKV_UNAVAILABLE, not applied; after that it may have —
// QKV_INDETERMINATE. Before, both were QKV_UNAVAILABLE.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { writeOutcomeOf, type QuorumKvError } from '@quorumkv/protocol';
import { watchForwardedRequest } from '../src/http-api.js';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

/** A "leader" that reads the whole request, then does `then` to the connection. */
async function leader(then: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<number> {
  const s = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => then(req, res));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as AddressInfo).port;
}

/** Forwards one PUT to 127.0.0.1:port and returns the error it ends with. */
function forward(port: number, timeoutMs = 5000): Promise<QuorumKvError> {
  return new Promise((resolve) => {
    const out = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/v1/kv/k', timeout: timeoutMs, agent: false });
    watchForwardedRequest(out, 'n1', resolve);
    out.on('response', (res) => {
      res.resume();
      resolve({ code: `HTTP ${res.statusCode}` } as QuorumKvError);
    });
    out.end(Buffer.from('value'));
  });
}

describe('errors of a write forwarded to the leader', () => {
  it('leader unreachable (nothing sent): QKV_UNAVAILABLE, not applied', async () => {
    const port = await leader(() => undefined);
    await new Promise<void>((r) => servers.pop()!.close(() => r())); // the port is closed now
    const e = await forward(port);
    expect(e.code).toBe('QKV_UNAVAILABLE');
    expect(writeOutcomeOf(e)).toBe('not-applied');
  });

  it('connection reset after the leader read the request: QKV_INDETERMINATE', async () => {
    const port = await leader((req) => req.socket.destroy());
    const e = await forward(port);
    expect(e.code).toBe('QKV_INDETERMINATE');
    expect(writeOutcomeOf(e)).toBe('unknown');
  });

  it('no answer before the forwarding timeout: QKV_INDETERMINATE', async () => {
    const port = await leader(() => undefined); // reads the write, never answers
    const e = await forward(port, 100);
    expect(e.code).toBe('QKV_INDETERMINATE');
  });
});
