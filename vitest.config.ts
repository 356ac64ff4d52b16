import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

// Tests import workspace packages from their TypeScript sources (no build needed for unit tests);
// tests that spawn real server processes use the built dist/ (the root `pnpm test` builds first).
//
// Projects: `unit` runs files in parallel; the integration projects (real processes, Docker,
// jepsen-lite runs) run one file at a time, because on a 2-core machine parallel clusters starve
// each other's timers and turn into flaky tests. `pnpm test` runs the projects one after another.
export default defineConfig({
  resolve: {
    alias: {
      '@quorumkv/raft': pkg('raft'),
      '@quorumkv/checker': pkg('checker'),
      '@quorumkv/testkit': pkg('testkit'),
      '@quorumkv/storage': pkg('storage'),
      '@quorumkv/protocol': pkg('protocol'),
      '@quorumkv/transport': pkg('transport'),
      '@quorumkv/server': pkg('server'),
      '@quorumkv/client': pkg('client'),
    },
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'jepsen-lite/test/**/*.test.ts'],
          exclude: ['jepsen-lite/test/matrix.test.ts', 'jepsen-lite/test/**/*.docker.test.ts', '**/node_modules/**'],
        },
      },
      {
        extends: true,
        test: { name: 'cluster', include: ['test/cluster/**/*.test.ts', 'test/client/**/*.test.ts', 'test/snapshot/**/*.test.ts'], fileParallelism: false },
      },
      {
        extends: true,
        // The short jepsen-lite matrix against real clusters (opt-in outside this project).
        test: { name: 'jepsen', include: ['jepsen-lite/test/matrix.test.ts'], env: { JL_MATRIX: '1' }, fileParallelism: false, testTimeout: 600_000 },
      },
      {
        extends: true,
        test: { name: 'docker', include: ['test/docker/**/*.test.ts', 'jepsen-lite/test/**/*.docker.test.ts'], fileParallelism: false, testTimeout: 300_000, hookTimeout: 300_000 },
      },
    ],
  },
});
