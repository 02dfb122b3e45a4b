// Says loudly, once per run, whether the PostgreSQL half of the dialect suites runs.
export default function setup(): void {
  const url = process.env.COUNTERSIGN_TEST_DATABASE_URL;
  if (url) {
    process.stdout.write(
      `\n[countersign] dialect suites run on SQLite and PostgreSQL (${url.replace(/:[^:@/]*@/, ':***@')})\n\n`,
    );
  } else {
    process.stdout.write(
      '\n[countersign] PostgreSQL SKIPPED: COUNTERSIGN_TEST_DATABASE_URL is not set, so dialect suites run on SQLite only.\n' +
        '              CI always sets it; locally: COUNTERSIGN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test\n\n',
    );
  }
}
