import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources, not dist/.
    alias: [
      { find: /^@overlay\/dataplane\/testing$/, replacement: src('./packages/dataplane/src/testing/index.ts') },
      { find: /^@overlay\/dataplane$/, replacement: src('./packages/dataplane/src/index.ts') },
      { find: /^@overlay\/crypto$/, replacement: src('./packages/crypto/src/index.ts') },
      { find: /^@overlay\/native$/, replacement: src('./packages/native/src/index.ts') },
      { find: /^@overlay\/host$/, replacement: src('./packages/host/src/index.ts') },
      { find: /^@overlay\/services$/, replacement: src('./packages/services/src/index.ts') },
      { find: /^@overlay\/store$/, replacement: src('./packages/store/src/index.ts') },
      { find: /^@overlay\/pki$/, replacement: src('./packages/pki/src/index.ts') },
      { find: /^@overlay\/agent$/, replacement: src('./packages/agent/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: network-namespace tests move real traffic; do not run too many at once.
    maxWorkers: 2,
    pool: 'forks',
  },
});
