// The Vitest run that StrykerJS (stryker.config.mjs) mutates against: SQLite only, and only the
// files whose tests exercise the mutated modules in process (no child processes, no browser), so
// that each mutant's run is short. See "Mutation testing" in README.md.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'test/domain.test.ts',
      'test/domain.input.test.ts',
      'test/domain.isolation.test.ts',
      'test/ssrf.address-policy.test.ts',
      'test/ssrf.guard.test.ts',
      'test/documents.test.ts',
      'test/security.test.ts',
      'test/security.scopes.test.ts',
      'test/master-key.test.ts',
      'test/store.contract.test.ts',
      'test/delivery.basic.test.ts',
      'test/delivery.e2e.test.ts',
      'test/delivery.isolation.test.ts',
      'test/delivery.operability.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
    minWorkers: 1,
  },
});
