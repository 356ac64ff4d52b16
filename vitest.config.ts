import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

// Tests import workspace packages from their TypeScript sources (no build needed for unit tests);
// tests that spawn real server processes use the built dist/ (the root `pnpm test` builds first).
export default defineConfig({
  resolve: {
    alias: {
      '@quorumkv/raft': pkg('raft'),
      '@quorumkv/testkit': pkg('testkit'),
      '@quorumkv/storage': pkg('storage'),
      '@quorumkv/protocol': pkg('protocol'),
      '@quorumkv/transport': pkg('transport'),
      '@quorumkv/server': pkg('server'),
      '@quorumkv/client': pkg('client'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'jepsen-lite/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
