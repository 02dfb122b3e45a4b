// The Vitest run that StrykerJS (stryker.config.mjs) mutates against: only the test files of the
// group being mutated (scripts/mutate.mjs names them in COUNTERSIGN_MUTATE_TESTS), on SQLite.
import { defineConfig } from 'vitest/config';

const tests = (process.env.COUNTERSIGN_MUTATE_TESTS ?? '').split(',').filter(Boolean);
if (tests.length === 0)
  throw new Error('run mutation tests with `npm run mutate` (COUNTERSIGN_MUTATE_TESTS is not set)');

export default defineConfig({
  test: {
    include: tests,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 1,
    minWorkers: 1,
  },
});
