import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more files at once only makes timing-sensitive delivery tests flaky. `npm test`
    // runs test/delivery.controls.test.ts in a run of its own after the rest: it checks a rate
    // limit at a receiver's clock, and a receiver starved of CPU by another file's processes
    // stamps requests that arrived apart as if they came together.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
