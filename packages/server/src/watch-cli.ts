// `quorumkv watch KEY [--prefix] [--rev N] [--prev] [--count N] [--progress]`: follows
// GET /v1/watch (Server-Sent Events) and prints one JSON line per event. When a node goes away or
// ends the stream (no leader), it reconnects to the next endpoint with Last-Event-ID, so the
// output has no gap and no duplicate across node failures; a compacted start ends it (exit 1).
import type { ConnectionOptions } from 'node:tls';
import { fetchNode } from './node-fetch.js';

/** Longest pause between reconnects when every endpoint fails. */
const RECONNECT_DELAY_MS_MAX = 2_000;
/** First pause after a failed connection (doubles up to RECONNECT_DELAY_MS_MAX). */
const RECONNECT_DELAY_MS_MIN = 100;
/** Largest SSE block kept while waiting for its end (a line longer than this is an error). */
const SSE_BLOCK_CHARS_MAX = 8 * 1024 * 1024;

/** What `quorumkv watch` was asked to do. */
export interface WatchCliPlan {
  endpoints: string[];
  key: string;
  prefix: boolean;
  /** First revision to print; undefined = from now on. */
  startRevision: number | undefined;
  prevValue: boolean;
  /** Exit 0 after this many events (undefined = run until interrupted). */
  count: number | undefined;
  /** Print progress events too. */
  progress: boolean;
  /** HTTPS options from --cacert/--cert/--key (cli-tls.ts); undefined = plain HTTP. */
  tls?: ConnectionOptions | undefined;
}

/** A stream that ended for good: exit with `code` after printing `message`. */
class WatchEnded extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One parsed SSE block. */
interface SseBlock {
  event: string;
  id: string | undefined;
  data: string;
}

/** Runs the watch; resolves with the exit code. `out` receives each printed line. */
export async function runWatchCli(plan: WatchCliPlan, out: (line: string) => void = (l) => console.log(l), signal?: AbortSignal): Promise<number> {
  let lastId: string | undefined;
  let printed = 0;
  let failures = 0;
  // One connection per turn; a turn ends when the stream does. Bounded by `signal` and `count`.
  for (let turn = 0; !signal?.aborted; turn++) {
    const endpoint = plan.endpoints[turn % plan.endpoints.length] as string;
    try {
      for await (const block of streamBlocks(endpoint, plan, lastId, signal)) {
        failures = 0;
        if (block.id !== undefined) lastId = block.id;
        if (block.event === 'error') throw endOrRetry(block.data);
        if (block.event === 'progress' && !plan.progress) continue;
        out(block.event === 'progress' ? JSON.stringify({ type: 'progress', ...JSON.parse(block.data) }) : block.data);
        if (block.event !== 'progress' && plan.count !== undefined && ++printed >= plan.count) return 0;
      }
    } catch (e) {
      if (e instanceof WatchEnded) {
        console.error(`quorumkv watch: ${e.message}`);
        return e.code;
      }
      if (signal?.aborted) break;
    }
    failures++;
    await new Promise((r) => setTimeout(r, Math.min(RECONNECT_DELAY_MS_MAX, RECONNECT_DELAY_MS_MIN * 2 ** Math.min(failures, 5))));
  }
  return 0;
}

/** The URL of a watch stream for `plan`. */
function watchPath(plan: WatchCliPlan): string {
  const q = new URLSearchParams();
  q.set(plan.prefix ? 'prefix' : 'key', plan.key);
  if (plan.startRevision !== undefined) q.set('start_revision', String(plan.startRevision));
  if (plan.prevValue) q.set('prev_value', 'true');
  return `/v1/watch?${q.toString()}`;
}

/** The SSE blocks of one connection; throws WatchEnded for answers that end the watch. */
async function* streamBlocks(endpoint: string, plan: WatchCliPlan, lastId: string | undefined, signal: AbortSignal | undefined): AsyncGenerator<SseBlock> {
  const res = await fetchNode(endpoint, watchPath(plan), { headers: lastId ? { 'last-event-id': lastId } : {}, ...(signal ? { signal } : {}) }, plan.tls);
  if (!res.ok) {
    const text = await res.text();
    if (res.status === 410 || res.status === 400) throw new WatchEnded(1, text);
    throw new Error(`${endpoint}: ${res.status} ${text}`); // busy, no leader, …: the next endpoint
  }
  if (!res.body) throw new Error(`${endpoint}: no body`);
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      yield parseBlock(buf.slice(0, end));
      buf = buf.slice(end + 2);
    }
    if (buf.length > SSE_BLOCK_CHARS_MAX) throw new Error(`${endpoint}: an event longer than ${SSE_BLOCK_CHARS_MAX} characters`);
  }
}

function parseBlock(block: string): SseBlock {
  const out: SseBlock = { event: 'message', id: undefined, data: '' };
  for (const line of block.split('\n')) {
    const at = line.indexOf(': ');
    if (at < 0) continue;
    const [name, value] = [line.slice(0, at), line.slice(at + 2)];
    if (name === 'event') out.event = value;
    else if (name === 'id') out.id = value;
    else if (name === 'data') out.data = value;
  }
  return out;
}

/** An `error` event: QKV_COMPACTED ends the watch; anything else (no leader, …) moves to the next endpoint. */
function endOrRetry(data: string): Error {
  let code = '';
  try {
    code = String((JSON.parse(data) as { code?: unknown }).code ?? '');
  } catch {
    // not JSON: treat as retryable
  }
  return code === 'QKV_COMPACTED' || code === 'QKV_INVALID_ARGUMENT' ? new WatchEnded(1, data) : new Error(data);
}
