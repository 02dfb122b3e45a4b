import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { defineConfig } from 'vitest/config';

/** The PostgreSQL `npm test` uses when COUNTERSIGN_TEST_DATABASE_URL is not given: the local server, if it answers. */
const LOCAL_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_500 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export default defineConfig(async () => {
  // Set here, in the main process, so that every test worker inherits it (test/helpers/databases.ts
  // reads it on import); test/helpers/global-setup.ts says which way it went.
  if (!process.env.COUNTERSIGN_TEST_DATABASE_URL && (await answers(LOCAL_POSTGRES))) {
    process.env.COUNTERSIGN_TEST_DATABASE_URL = LOCAL_POSTGRES;
    process.env.COUNTERSIGN_TEST_DATABASE_FOUND = 'true';
  }
  // COUNTERSIGN_TEST_REPORT_DIR (.ci/run): each Vitest run writes its own JSON report there, so the
  // reports of `npm test`'s two runs can be added up; flags after `npm test --` reach only the last.
  const reportDir = process.env.COUNTERSIGN_TEST_REPORT_DIR;
  return {
    test: {
      include: ['test/**/*.test.ts'],
      globalSetup: ['test/helpers/global-setup.ts'],
      // A guard against a test that hangs, not a measure of speed: tests that start real processes
      // (the CLI, crash tests) take several times longer on a loaded machine (README, Testing).
      testTimeout: 120_000,
      hookTimeout: 60_000,
      pool: 'forks' as const,
      // Two cores: more files at once only makes timing-sensitive delivery tests flaky. `npm test`
      // runs test/delivery.controls.test.ts in a run of its own after the rest: it checks a rate
      // limit at a receiver's clock, and a receiver starved of CPU by another file's processes
      // stamps requests that arrived apart as if they came together.
      maxWorkers: 2,
      minWorkers: 1,
      ...(reportDir
        ? {
            reporters: [
              'default',
              ['json', { outputFile: join(reportDir, `vitest-${Date.now()}-${randomBytes(4).toString('hex')}.json`) }],
            ] as [string, [string, { outputFile: string }]],
          }
        : {}),
    },
  };
});
