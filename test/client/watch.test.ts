// Watches against a real three-node cluster: a watcher whose nodes are killed with SIGKILL (first
// a follower, then the leader) while 5,000 puts happen sees every put exactly once, in revision
// order, with no gap — starting late, so it first catches up from history; and the HTTP event
// stream resumes with Last-Event-ID and refuses a compacted start.
import { execFile } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvClient, WatchEvent } from '@quorumkv/client';
import { CLI_PATH, ProcessCluster, waitFor } from '../harness/cluster.js';
import { ELECTION_TICKS, TICK_MS, connectTo, outcome, runBounded } from './helpers.js';

const PUTS = 5_000;
const WRITERS = 64;
const dec = new TextDecoder();

describe('watch', () => {
  let c: ProcessCluster;
  const clients: KvClient[] = [];
  beforeAll(async () => {
    // A small in-memory window, so a watcher that starts late reads history first (the catch-up path).
    c = await ProcessCluster.start({ name: 'qkv-watch', tickMs: TICK_MS, electionTicks: ELECTION_TICKS, extraArgs: ['--watch-window-changes', '200'] });
    await c.waitForLeader({ timeoutMs: 20_000 });
  });
  afterAll(async () => {
    for (const k of clients) await k.close();
    await c?.teardown();
  });

  it('kill -9 of the watcher\'s nodes during 5,000 puts: every put is seen exactly once, in order, no gap', () => c.guard(async () => {
    const leader = (await c.waitForLeader()).id;
    const follower = c.nodes.find((n) => n.id !== leader)!;
    const writer = await connectTo(c);
    // The watcher talks to one follower and the leader only: both die in turn.
    let watchRetries = 0;
    const watcherClient = await connectTo(c, { endpoints: [follower.address, c.node(leader).address], onRetry: (e) => void (e.op === 'watch' && watchRetries++) });
    clients.push(writer, watcherClient);
    const start = (await writer.put('w/start', 'x')).revision + 1;
    const watch = watcherClient.watch({ prefix: 'w/k/', startRevision: start });
    const seen: WatchEvent[] = [];
    // The reader holds at HOLD_AT events until the leader's kill is over, so that kill lands while
    // the watch is mid-stream however fast the machine is (on a quiet one the watcher used to have
    // seen all 5,000 events before the second kill came).
    const HOLD_AT = Math.floor(PUTS / 2);
    let secondKillOver!: () => void;
    const secondKill = new Promise<void>((r) => (secondKillOver = r));
    let startReading!: () => void;
    const late = new Promise<void>((r) => (startReading = r));
    const reading = (async () => {
      await late; // starts a quarter into the puts: behind the window, it catches up from history
      for await (const ev of watch) {
        seen.push(ev);
        if (seen.length === HOLD_AT) await secondKill;
        if (seen.length >= PUTS) break;
      }
    })();

    const acked = new Map<number, string>(); // revision -> key=value
    let faults = Promise.resolve();
    const seenAtKill: number[] = [];
    const kill = (id: string, then?: () => void) => async () => {
      await waitFor('the watcher to have seen an event', () => (seen.length > 0 ? true : undefined), 30_000);
      seenAtKill.push(seen.length);
      await killAndRestart(c, id);
      then?.();
    };
    await runBounded(PUTS, WRITERS, async (i) => {
      if (i === Math.floor(PUTS / 4)) startReading();
      if (i === Math.floor(PUTS / 3)) faults = faults.then(kill(follower.id));
      if (i === Math.floor((2 * PUTS) / 3)) faults = faults.then(kill(leader, secondKillOver));
      const key = `w/k/${i % 100}`;
      const r = await outcome(writer.put(key, `v${i}`, { timeoutMs: 20_000 }));
      // Only puts under w/k/ happen from `start` on, so their revisions are start..start+PUTS-1.
      expect(r.ok, r.ok ? '' : `put ${i} failed: ${r.code}`).toBe(true);
      if (r.ok) acked.set(r.value.revision, `${key}=v${i}`);
    });
    await faults;
    let readError: unknown;
    reading.catch((e: unknown) => (readError = e));
    await waitFor(`the watcher saw ${PUTS} events`, () => {
      if (readError) throw new Error(`the watch ended after ${seen.length} events: ${String(readError)}`, { cause: readError });
      return seen.length >= PUTS ? true : undefined;
    }, 30_000);
    await reading;

    // The kills hit the watch mid-stream, and its requests did meet dead nodes.
    for (const n of seenAtKill) expect(n > 0 && n < PUTS, `events seen at a kill: ${n}`).toBe(true);
    expect(watchRetries).toBeGreaterThan(0);
    const revisions = seen.map((e) => e.modRevision);
    expect(revisions).toEqual(Array.from({ length: PUTS }, (_, j) => start + j)); // in order, no gap, no duplicate
    for (const ev of seen) {
      expect(ev.type).toBe('put');
      expect(`${dec.decode(ev.key)}=${dec.decode(ev.value!)}`).toBe(acked.get(ev.modRevision));
    }
  })(), 60_000);

  it('GET /v1/watch streams Server-Sent Events and resumes after Last-Event-ID', () => c.guard(async () => {
    await c.waitConverged(); // the nodes the test before restarted have caught up
    const kv = await connectTo(c);
    clients.push(kv);
    const r1 = await kv.put('sse/a', '1');
    await kv.put('sse/b', '2');
    await kv.put('other', 'x');
    const port = c.nodes[0]!.port;
    const first = await readSse(port, `/v1/watch?prefix=sse/&start_revision=${r1.revision}`, {}, 2);
    expect(first.map((e) => [e.event, e.id, JSON.parse(e.data).key, JSON.parse(e.data).value])).toEqual([
      ['put', String(r1.revision), 'sse/a', '1'],
      ['put', String(r1.revision + 1), 'sse/b', '2'],
    ]);
    await kv.put('sse/c', '3');
    const resumed = await readSse(port, '/v1/watch?prefix=sse/&start_revision=1', { 'last-event-id': String(r1.revision + 1) }, 1);
    expect(resumed.map((e) => JSON.parse(e.data).key)).toEqual(['sse/c']);
    const compacted = await kv.compact(r1.revision + 2);
    // The node streamed from applies the compact in its own time: wait until its reads refuse.
    const reader = await connectTo(c, { endpoints: [c.nodes[0]!.address] });
    clients.push(reader);
    await waitFor('the compact applied on n1', async () => ((await outcome(reader.get('sse/a', { revision: r1.revision, consistency: 'stale' }))).ok ? undefined : true));
    const refused = await httpGet(port, `/v1/watch?prefix=sse/&start_revision=${r1.revision}`);
    expect(refused.status).toBe(410);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'QKV_COMPACTED', compactedRevision: compacted.compactedRevision });
  })(), 60_000);

  it('prints each change under a prefix from --rev as a JSON line, with --prev', () => c.guard(async () => {
    const kv = await connectTo(c);
    try {
      const r1 = await kv.put('cli/a', '1');
      await kv.put('cli/a', '2');
      await kv.delete('cli/a');
      const stdout = await new Promise<string>((resolve, reject) => {
        const args = [CLI_PATH, 'watch', 'cli/', '--prefix', '--rev', String(r1.revision), '--prev', '--count', '3', '--endpoints', c.nodes[0]!.address];
        execFile(process.execPath, args, { timeout: 10_000 }, (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)));
      });
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual([
        { type: 'put', key: 'cli/a', value: '1', modRevision: r1.revision, createRevision: r1.revision, version: 1 },
        { type: 'put', key: 'cli/a', value: '2', modRevision: r1.revision + 1, createRevision: r1.revision, version: 2, prevValue: '1' },
        { type: 'delete', key: 'cli/a', modRevision: r1.revision + 2, createRevision: 0, version: 0, prevValue: '2' },
      ]);
    } finally {
      await kv.close();
    }
  })(), 30_000);
});

/** kill -9, a moment down, restart (the node catches up from the log or a snapshot). */
async function killAndRestart(c: ProcessCluster, id: string): Promise<void> {
  await c.kill9(id);
  await new Promise((r) => setTimeout(r, 300));
  await c.restart(id);
}

interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** Reads `count` non-progress events from an event stream, then hangs up. Bounded by 10 s. */
function readSse(port: number, path: string, headers: Record<string, string>, count: number): Promise<SseEvent[]> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const req = http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const field = (name: string) => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
          const ev = { event: field('event') ?? 'message', id: field('id'), data: field('data') ?? '' };
          if (ev.event !== 'progress') events.push(ev);
          if (events.length >= count) {
            req.destroy();
            resolve(events);
            return;
          }
        }
      });
    });
    req.on('error', (e) => (events.length >= count ? undefined : reject(e)));
    setTimeout(() => {
      req.destroy();
      reject(new Error(`only ${events.length} of ${count} events within 10 s`));
    }, 10_000).unref();
  });
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}
