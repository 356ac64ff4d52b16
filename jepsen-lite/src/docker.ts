// Docker plumbing for `--env docker`: is an engine there (and the node image, and compose), a
// bounded CLI call, and removal of a compose project by its labels — also from an exit or signal
// hook, so that a run interrupted by Ctrl-C or a crash leaves no containers, volumes or networks.
//
// jepsen-lite's own copy of the ideas in test/docker/docker-env.ts (jepsen-lite does not import
// from test/).

import { execFile, execFileSync } from 'node:child_process';

/** The node image deploy/build-images.sh builds (override with QKV_IMAGE or --image). */
export const DEFAULT_NODE_IMAGE = process.env.QKV_IMAGE ?? 'quorumkv/node:local';
/** Longest one `docker` CLI call may take. */
export const DOCKER_CALL_TIMEOUT_MS_MAX = 60_000;
/** Longest one probe (`docker info`, `image inspect`) may take. */
const PROBE_TIMEOUT_MS = 10_000;
/** Largest CLI output read. */
const OUTPUT_BYTES_MAX = 16 * 1024 * 1024;

/** Whether `--env docker` can run here, and if not, why (one line). */
export type DockerPreflight = { ok: true; compose: ComposeCommand } | { ok: false; reason: string };

/** The compose command: the v2 plugin (`docker compose`) or v1 (`docker-compose`). */
export interface ComposeCommand {
  cmd: string;
  prefix: string[];
}

function probe(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { timeout: PROBE_TIMEOUT_MS, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Checks (synchronously, never throws) for the docker CLI, a running engine, the image and compose. */
export function dockerPreflight(image = DEFAULT_NODE_IMAGE): DockerPreflight {
  if (!probe('docker', ['--version'])) return { ok: false, reason: 'no docker CLI on this machine (apt-get install -y docker.io)' };
  if (!probe('docker', ['info', '--format', '{{.ServerVersion}}'])) return { ok: false, reason: 'the Docker engine is not running (start dockerd)' };
  if (!probe('docker', ['image', 'inspect', '--format', '{{.Id}}', image])) return { ok: false, reason: `the image ${image} is not built (run bash deploy/build-images.sh)` };
  if (probe('docker', ['compose', 'version'])) return { ok: true, compose: { cmd: 'docker', prefix: ['compose'] } };
  if (probe('docker-compose', ['version', '--short'])) return { ok: true, compose: { cmd: 'docker-compose', prefix: [] } };
  return { ok: false, reason: 'neither `docker compose` nor `docker-compose` is installed (apt-get install -y docker-compose)' };
}

/** A failed CLI call; `stderr` holds what the command said. */
export class DockerCallError extends Error {
  readonly code = 'JL_DOCKER_CALL';
  constructor(
    message: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DockerCallError';
  }
}

/** Runs a command with a timeout; resolves with stdout, rejects with {@link DockerCallError}. */
export function runCommand(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, [...args], { timeout: opts.timeoutMs ?? DOCKER_CALL_TIMEOUT_MS_MAX, env: opts.env ?? process.env, maxBuffer: OUTPUT_BYTES_MAX }, (err, stdout, stderr) => {
      const said = stderr.toString().trim();
      if (err) reject(new DockerCallError(`${cmd} ${args.join(' ')} failed: ${said || err.message}`, said, { cause: err }));
      else resolve(stdout.toString());
    });
  });
}

/** `docker ARGS…`, bounded. */
export function docker(...args: string[]): Promise<string> {
  return runCommand('docker', args);
}

function dockerSyncQuiet(args: string[]): string {
  try {
    return execFileSync('docker', args, { timeout: DOCKER_CALL_TIMEOUT_MS_MAX, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
}

/**
 * Removes a compose project by its labels — containers (forced, with anonymous volumes), named
 * volumes, networks — without its compose or env file. Synchronous, so it can run in an exit
 * hook; never throws.
 */
export function removeComposeProjectNow(project: string): void {
  const filter = `label=com.docker.compose.project=${project}`;
  const list = (args: string[]) => dockerSyncQuiet(args).split('\n').map((x) => x.trim()).filter(Boolean);
  const containers = list(['ps', '-aq', '--filter', filter]);
  if (containers.length > 0) dockerSyncQuiet(['rm', '-f', '-v', ...containers]);
  const volumes = list(['volume', 'ls', '-q', '--filter', filter]);
  if (volumes.length > 0) dockerSyncQuiet(['volume', 'rm', '-f', ...volumes]);
  for (const n of list(['network', 'ls', '-q', '--filter', filter])) dockerSyncQuiet(['network', 'rm', n]);
}

const liveProjects = new Set<string>();
let hooksInstalled = false;

function removeLiveNow(): void {
  for (const p of liveProjects) removeComposeProjectNow(p);
  liveProjects.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  process.stderr.write(`jepsen-lite: ${sig}: removing docker project(s) ${[...liveProjects].join(', ')}\n`);
  removeLiveNow();
  uninstallHooks();
  process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', removeLiveNow);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', removeLiveNow);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onSignal);
}

/**
 * Remembers a compose project to remove if the process exits or is interrupted (SIGINT, SIGTERM,
 * SIGHUP) before {@link untrackProject}.
 */
export function trackProject(project: string): void {
  liveProjects.add(project);
  installHooks();
}

/** Forgets a project that was taken down normally (and drops the hooks when none is left). */
export function untrackProject(project: string): void {
  liveProjects.delete(project);
  if (liveProjects.size === 0) uninstallHooks();
}
