// Docker plumbing shared by the Docker tests and jepsen-lite's Docker environment: is an engine
// there, is the node image built, a bounded `docker` CLI call, and a registry of everything the
// test process started so that it is removed even when the process dies mid-test.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { freePorts, sleep, waitFor } from '../harness/cluster.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The node image deploy/build-images.sh builds (override with QKV_IMAGE). */
export const NODE_IMAGE = process.env.QKV_IMAGE ?? 'quorumkv/node:local';
/** Label on every container, network and volume the tests create: `docker rm -f $(docker ps -aq --filter label=qkv.test)`. */
export const TEST_LABEL = 'qkv.test';
/** Longest one `docker` CLI call may take. */
const DOCKER_CALL_TIMEOUT_MS = 60_000;
/** Longest the availability probe (`docker info`) may take. */
const PROBE_TIMEOUT_MS = 10_000;

/** The repository root: the nearest directory above this file holding pnpm-workspace.yaml. */
export const REPO_ROOT = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(start: string): string {
  let dir = start;
  for (let i = 0; i < 10; i++) {
    if (existsSync(path.join(dir, 'pnpm-workspace.yaml'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`no pnpm-workspace.yaml above ${start}`);
}

/** Whether the Docker tests can run here, and if not, why (one line). */
export type DockerPreflight = { ok: true } | { ok: false; reason: string };

/**
 * Checks synchronously (it runs while vitest collects tests) that the docker CLI exists, the
 * engine answers, and the node image is built. Never throws.
 */
export function dockerPreflight(image = NODE_IMAGE): DockerPreflight {
  const run = (args: string[]): string => execFileSync('docker', args, { timeout: PROBE_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  try {
    run(['--version']);
  } catch {
    return { ok: false, reason: 'no docker CLI on this machine (CI installs it with .ci/docker.sh)' };
  }
  try {
    run(['info', '--format', '{{.ServerVersion}}']);
  } catch {
    return { ok: false, reason: 'the Docker engine is not running (start dockerd, or run .ci/docker.sh)' };
  }
  try {
    run(['image', 'inspect', '--format', '{{.Id}}', image]);
  } catch {
    return { ok: false, reason: `the image ${image} is not built (run deploy/build-images.sh)` };
  }
  try {
    run(['compose', 'version']);
  } catch {
    try {
      execFileSync('docker-compose', ['version', '--short'], { timeout: PROBE_TIMEOUT_MS, stdio: 'ignore' });
    } catch {
      return { ok: false, reason: 'neither `docker compose` nor `docker-compose` is installed (apt-get install -y docker-compose)' };
    }
  }
  return { ok: true };
}

/** The compose command on this machine: v2 plugin (`docker compose`) or v1 (`docker-compose`). */
export function composeCommand(): { cmd: string; prefix: string[] } {
  try {
    execFileSync('docker', ['compose', 'version'], { timeout: PROBE_TIMEOUT_MS, stdio: 'ignore' });
    return { cmd: 'docker', prefix: ['compose'] };
  } catch {
    return { cmd: 'docker-compose', prefix: [] };
  }
}

/** Runs a command with a timeout; resolves with stdout, rejects with stderr in the message. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? DOCKER_CALL_TIMEOUT_MS, env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.toString().trim() || err.message}`, { cause: err }));
        else resolve(stdout.toString());
      },
    );
  });
}

/** `docker ARGS…`, bounded. */
export function docker(...args: string[]): Promise<string> {
  return run('docker', args);
}

// ---------------------------------------------------------------------------------------------
// Everything started is registered, in memory and in a small file per test process
// (<tmpdir>/qkv-docker-tests/<pid>.json). It is removed on teardown, on exit of the process,
// and — when a process died without either (SIGKILL, a killed vitest worker) — by the next run's
// sweepOrphans(), which removes what a no-longer-running process left behind.

/** Where each test process records what it started. */
const REGISTRY_DIR = path.join(tmpdir(), 'qkv-docker-tests');
const REGISTRY_FILE = path.join(REGISTRY_DIR, `${process.pid}.json`);

interface Registry {
  containers: string[];
  networks: string[];
  composeProjects: string[];
}

const live: { containers: Set<string>; networks: Set<string>; composeProjects: Set<string> } = {
  containers: new Set(),
  networks: new Set(),
  composeProjects: new Set(),
};
let exitHookInstalled = false;

function saveRegistry(): void {
  const r: Registry = { containers: [...live.containers], networks: [...live.networks], composeProjects: [...live.composeProjects] };
  try {
    if (r.containers.length + r.networks.length + r.composeProjects.length === 0) {
      rmSync(REGISTRY_FILE, { force: true });
      return;
    }
    mkdirSync(REGISTRY_DIR, { recursive: true });
    writeFileSync(REGISTRY_FILE, JSON.stringify(r));
  } catch {
    /* the registry is a safety net; the in-memory sets still drive teardown */
  }
}

function track(kind: keyof typeof live, id: string, on: boolean): void {
  if (on) {
    installExitHook();
    live[kind].add(id);
  } else {
    live[kind].delete(id);
  }
  saveRegistry();
}

/** Remembers a container id to remove (with its anonymous volumes) if the process exits early. */
export function trackContainer(id: string): void {
  track('containers', id, true);
}
/** Forgets a container that was removed normally. */
export function untrackContainer(id: string): void {
  track('containers', id, false);
}
/** Remembers a network to remove if the process exits early. */
export function trackNetwork(id: string): void {
  track('networks', id, true);
}
/** Forgets a network that was removed normally. */
export function untrackNetwork(id: string): void {
  track('networks', id, false);
}
/** Remembers a compose project (its containers, volumes and networks) to remove if the process exits early. */
export function trackComposeProject(project: string): void {
  track('composeProjects', project, true);
}
/** Forgets a compose project that was taken down normally. */
export function untrackComposeProject(project: string): void {
  track('composeProjects', project, false);
}

const QUIET = { stdio: 'ignore' as const, timeout: 60_000 };

function tryDocker(args: string[]): string {
  try {
    return execFileSync('docker', args, { ...QUIET, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
}

/**
 * Removes a compose project by its labels (containers, then volumes and networks), with no need
 * for its compose file or env file. Synchronous; never throws.
 */
export function removeComposeProjectNow(project: string): void {
  const filter = `label=com.docker.compose.project=${project}`;
  const list = (args: string[]) => tryDocker(args).split('\n').map((x) => x.trim()).filter(Boolean);
  const containers = list(['ps', '-aq', '--filter', filter]);
  if (containers.length > 0) tryDocker(['rm', '-f', '-v', ...containers]);
  const volumes = list(['volume', 'ls', '-q', '--filter', filter]);
  if (volumes.length > 0) tryDocker(['volume', 'rm', '-f', ...volumes]);
  const networks = list(['network', 'ls', '-q', '--filter', filter]);
  if (networks.length > 0) tryDocker(['network', 'rm', ...networks]);
}

function removeRegistered(r: Registry): void {
  for (const p of r.composeProjects) removeComposeProjectNow(p);
  if (r.containers.length > 0) tryDocker(['rm', '-f', '-v', ...r.containers]);
  for (const n of r.networks) tryDocker(['network', 'rm', n]);
}

/** Removes, synchronously and ignoring errors, whatever this process still has registered. */
export function removeAllNow(): void {
  removeRegistered({ containers: [...live.containers], networks: [...live.networks], composeProjects: [...live.composeProjects] });
  for (const set of Object.values(live)) set.clear();
  saveRegistry();
}

/**
 * Removes what earlier test processes that are no longer running left behind (their registry
 * files name it). Returns how many registries were swept. Never throws.
 */
export function sweepOrphans(): number {
  let swept = 0;
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR).filter((f) => /^\d+\.json$/.test(f));
  } catch {
    return 0;
  }
  for (const f of files) {
    const pid = Number(f.slice(0, -'.json'.length));
    if (pid === process.pid || isAlive(pid)) continue;
    const file = path.join(REGISTRY_DIR, f);
    try {
      removeRegistered(JSON.parse(readFileSync(file, 'utf8')) as Registry);
    } catch {
      /* an unreadable registry: nothing we can do but drop it */
    }
    rmSync(file, { force: true });
    swept++;
  }
  return swept;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', removeAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      removeAllNow();
      process.kill(process.pid, sig);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Small utilities.

// The process-cluster harness's helpers serve the Docker tests too.
export { sleep, freePorts, waitFor };

