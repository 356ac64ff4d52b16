// Every process the harness starts is registered here and killed when the harness ends, whether
// it ends normally, by an error, or by Ctrl-C / SIGTERM.
import { fetchNode } from '@quorumkv/server';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

const live = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];
let installed = false;
let exiting = false;

/** Longest time the asynchronous cleanups may take on a signal before the harness exits anyway. */
const CLEANUP_MAX_MS = 5000;

/** Registers a child process; it is SIGKILLed at exit if it is still running. */
export function track(child: ChildProcess): ChildProcess {
  installHandlers();
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Registers an asynchronous cleanup (stop a cluster, remove a directory) run on a signal. */
export function onCleanup(fn: () => Promise<void>): () => void {
  installHandlers();
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** SIGKILLs every tracked process that is still running (synchronous; safe in an exit handler). */
export function killAllTracked(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

async function runCleanups(): Promise<void> {
  const fns = cleanups.splice(0).reverse();
  const all = Promise.allSettled(fns.map((f) => f()));
  await Promise.race([all, sleep(CLEANUP_MAX_MS)]);
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllTracked);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (exiting) {
        killAllTracked();
        process.exit(130);
      }
      exiting = true;
      process.stderr.write(`\nbench: ${sig}: stopping every process it started…\n`);
      void runCleanups().finally(() => {
        killAllTracked();
        process.exit(130);
      });
    });
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Finds `count` distinct free TCP ports on 127.0.0.1 (bound then released; a small race is accepted). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<import('node:net').Server>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** `fetch`, or for an https:// URL with `ca` a request that trusts that CA (Node's fetch takes none). */
function fetchWith(url: string, init: RequestInit, ca: Buffer | undefined): Promise<Response> {
  if (ca === undefined || !url.startsWith('https://')) return fetch(url, init);
  const u = new URL(url);
  return fetchNode(u.host, u.pathname + u.search, { method: init.method ?? 'GET', ...(typeof init.body === 'string' ? { body: init.body } : {}), ...(init.signal ? { signal: init.signal } : {}) }, { ca });
}

/** Fetches a URL and parses JSON, or returns undefined on any failure or after `timeoutMs`. */
export async function fetchJson(url: string, timeoutMs: number, init: RequestInit = {}, ca?: Buffer): Promise<unknown> {
  try {
    const res = await fetchWith(url, { ...init, signal: AbortSignal.timeout(timeoutMs) }, ca);
    if (!res.ok) return undefined;
    return (await res.json()) as unknown;
  } catch {
    return undefined;
  }
}

/** Fetches a URL as text, or undefined on failure or after `timeoutMs`. */
export async function fetchText(url: string, timeoutMs: number, ca?: Buffer): Promise<string | undefined> {
  try {
    const res = await fetchWith(url, { signal: AbortSignal.timeout(timeoutMs) }, ca);
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined, or `timeoutMs` passes. */
export async function pollUntil<T>(probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs: number): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() >= deadline) return undefined;
    await sleep(intervalMs);
  }
}
