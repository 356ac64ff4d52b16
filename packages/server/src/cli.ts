#!/usr/bin/env node
// The `quorumkv` command: serve a node, start a local dev cluster, or talk to a cluster.
import { parseArgs } from 'node:util';
import { ConfigError, SERVE_USAGE, parseServeConfig } from './config.js';
import { DEV_USAGE, runDev } from './dev.js';
import { serveRecovering } from './storage-recovery.js';
import { runAdminCommand, ADMIN_USAGE } from './admin-cli.js';
import { FoundingRefusedError } from './founding.js';
import { IdentityFileError } from './identity.js';
import { runCerts } from './certs.js';

/** Exit code of a node that refuses to start for who it is (founding refused, damaged identity file). */
const EXIT_IDENTITY = 3;

const USAGE = `usage: quorumkv <command> [options]

commands:
  serve        run a node                      (quorumkv serve --help)
  dev          run a local cluster             (quorumkv dev --help)
  certs init   make development TLS certificates (quorumkv certs init --help)
  put KEY VALUE | get KEY [--rev N] | del KEY | status   talk to a cluster (--endpoints H:P,...)
${ADMIN_USAGE}`;

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const cfg = parseServeConfig(argv);
  const recovering = await serveRecovering(cfg);
  let signals = 0;
  const onSignal = (sig: string) => {
    if (++signals > 1) process.exit(130);
    recovering.log.info({ signal: sig }, 'signal received');
    void recovering.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // SIGHUP re-reads the TLS files now (they are also reloaded when they change).
  process.on('SIGHUP', () => {
    const running = recovering.current();
    if (running?.tls) running.tls.reload('SIGHUP');
    else recovering.log.info({}, running ? 'SIGHUP ignored: no TLS configured' : 'SIGHUP ignored: the node is stopped on a storage fault');
  });
  return new Promise<number>(() => undefined); // runs until a signal
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case 'dev':
      if (rest.includes('--help')) {
        console.log(DEV_USAGE);
        return 0;
      }
      return runDev(rest);
    case 'certs':
      return runCerts(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      return runAdminCommand(cmd, rest);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof ConfigError) {
      console.error(`quorumkv: ${e.message}`);
      process.exitCode = 2;
    } else if (e instanceof FoundingRefusedError || e instanceof IdentityFileError) {
      console.error(`quorumkv: ${e.message}`);
      process.exit(EXIT_IDENTITY); // the node's sockets are closed, but do not wait for stray timers
    } else {
      console.error(`quorumkv: ${(e as Error)?.stack ?? String(e)}`);
      process.exitCode = 1;
    }
  },
);
void parseArgs;
