// The client libraries under test behind one tiny interface: @quorumkv/client for quorumkv and the
// npm `etcd3` client for etcd. The generator measures library + server, as an application sees it.
import { readFileSync } from 'node:fs';
import { connect } from '@quorumkv/client';
import type { TargetName } from './cluster.js';

/** Read consistency requested by the benchmark. */
export type BenchConsistency = 'linearizable' | 'stale';

/** One connection of a client library to a cluster. */
export interface KvDriver {
  put(key: string, value: Uint8Array): Promise<void>;
  get(key: string): Promise<void>;
  /** One transaction: if both keys exist (version > 0), write `value` to both, atomically. */
  transfer(a: string, b: string, value: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** How a driver is created. */
export interface DriverOptions {
  target: TargetName;
  endpoints: string[];
  consistency: BenchConsistency;
  /** Deadline of one operation, retries included, in ms. */
  opTimeoutMs: number;
  /**
   * etcd only: keep the etcd3 library's default retry + circuit-breaker policy. Off by default:
   * its breakers lock healthy members out for seconds after a leader kill (see docs/benchmarks.md).
   */
  etcdRetry: boolean;
  /** quorumkv over TLS: the CA file to trust (the client then dials wss://). */
  tlsCaFile?: string | undefined;
}

/** Connects the client library of `o.target`. */
export async function createDriver(o: DriverOptions): Promise<KvDriver> {
  return o.target === 'quorumkv' ? quorumkvDriver(o) : etcdDriver(o);
}

async function quorumkvDriver(o: DriverOptions): Promise<KvDriver> {
  const kv = await connect({
    endpoints: o.endpoints,
    timeoutMs: o.opTimeoutMs,
    connectTimeoutMs: Math.min(5000, o.opTimeoutMs * 2),
    ...(o.tlsCaFile ? { tls: { ca: readFileSync(o.tlsCaFile) } } : {}),
  });
  const consistency = o.consistency;
  return {
    put: async (key, value) => {
      await kv.put(key, value);
    },
    get: async (key) => {
      await kv.get(key, { consistency });
    },
    transfer: async (a, b, value) => {
      await kv.txn({
        compare: [
          { key: a, target: 'version', op: '>', value: 0 },
          { key: b, target: 'version', op: '>', value: 0 },
        ],
        success: [
          { op: 'put', key: a, value },
          { op: 'put', key: b, value },
        ],
      });
    },
    close: () => kv.close(),
  };
}

async function etcdDriver(o: DriverOptions): Promise<KvDriver> {
  // Loaded only when etcd is benchmarked, so quorumkv-only runs do not need it.
  const { Etcd3 } = await import('etcd3');
  type Options = NonNullable<ConstructorParameters<typeof Etcd3>[0]>;
  const options: Options = {
    hosts: o.endpoints,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.opTimeoutMs }),
  };
  if (!o.etcdRetry) {
    // One attempt per call on the member the pool picks; the worker simply issues its next op.
    const once = { execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T) => Promise.resolve(fn({ signal: new AbortController().signal })) };
    options.faultHandling = { host: () => once as never, global: once as never };
  }
  const client = new Etcd3(options);
  const serializable = o.consistency === 'stale';
  return {
    put: async (key, value) => {
      await client.put(key).value(Buffer.from(value.buffer, value.byteOffset, value.byteLength)).exec();
    },
    get: async (key) => {
      const b = client.get(key);
      if (serializable) b.serializable(true);
      await b.exec();
    },
    transfer: async (a, b, value) => {
      const v = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      await client.if(a, 'Version', '>', 0).and(b, 'Version', '>', 0).then(client.put(a).value(v), client.put(b).value(v)).commit();
    },
    close: async () => {
      client.close();
    },
  };
}
