// Says loudly, once per run, whether the PostgreSQL half of the dialect suites runs; under CI, a
// run that would skip it fails instead.
export default function setup(): void {
  const url = process.env.COUNTERSIGN_TEST_DATABASE_URL;
  if (url) {
    const found = process.env.COUNTERSIGN_TEST_DATABASE_FOUND === 'true' ? ', found on 127.0.0.1:5432' : '';
    process.stdout.write(
      `\n[countersign] dialect suites run on SQLite and PostgreSQL (${url.replace(/:[^:@/]*@/, ':***@')}${found})\n\n`,
    );
    return;
  }
  const why =
    '[countersign] PostgreSQL SKIPPED: COUNTERSIGN_TEST_DATABASE_URL is not set and nothing answers on 127.0.0.1:5432,\n' +
    '              so the dialect suites run on SQLite only.';
  if (process.env.CI === 'true') {
    throw new Error(`${why}\n              Under CI the PostgreSQL half must run: start PostgreSQL or set the URL.`);
  }
  process.stdout.write(
    `\n${why}\n              Start PostgreSQL, or set COUNTERSIGN_TEST_DATABASE_URL, to run them.\n\n`,
  );
}
