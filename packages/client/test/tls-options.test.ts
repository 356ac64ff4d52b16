// The client's `tls` option: validated once in connect(), and it makes the client dial wss://.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@quorumkv/protocol';
import { connect } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

describe('tls option', () => {
  it('refuses a certificate without its key, a non-object, and an explicit ws:// endpoint', () => {
    expect(() => resolveOptions({ endpoints: ['127.0.0.1:1'], tls: { cert: 'x' } })).toThrow(/tls.cert and tls.key go together/);
    expect(() => resolveOptions({ endpoints: ['127.0.0.1:1'], tls: 'ca.pem' as never })).toThrow(InvalidArgumentError);
    expect(() => resolveOptions({ endpoints: ['ws://127.0.0.1:1'], tls: { ca: 'x' } })).toThrow(/endpoint says ws:\/\//);
    expect(resolveOptions({ endpoints: ['127.0.0.1:1'], tls: { ca: new Uint8Array([1]) } }).tls?.ca).toBeInstanceOf(Uint8Array);
  });

  it('dials wss:// for host:port endpoints when tls is set', async () => {
    const urls: string[] = [];
    const factory = (url: string) => {
      urls.push(url);
      throw new Error('no network in this test');
    };
    await expect(connect({ endpoints: ['127.0.0.1:1'], tls: {}, webSocketFactory: factory, connectTimeoutMs: 200 })).rejects.toThrow();
    expect(urls[0]).toBe('wss://127.0.0.1:1/client');
  });
});
