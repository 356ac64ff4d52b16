#!/usr/bin/env node
// Regenerates the expected output of every transcript in packages/raft/test/transcripts from
// the current core. Review the resulting `git diff` as you would review code: every changed
// line is a change in behaviour. Same as: QKV_REWRITE=1 pnpm vitest run packages/raft/test/transcript.test.ts
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const r = spawnSync('pnpm', ['vitest', 'run', 'packages/raft/test/transcript.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, QKV_REWRITE: '1' },
});
process.exit(r.status ?? 1);
