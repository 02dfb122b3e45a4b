// `countersign migrate`: apply pending migrations and exit (the server also does this at start).
import { type Flags, loadConfig } from '../config.js';
import { migrateToLatest } from '../store/migrator.js';
import { describeLocation, openDialect } from '../store/open.js';

export async function migrateCommand(flags: Flags): Promise<number> {
  const config = loadConfig(flags);
  const dialect = openDialect(config.database);
  try {
    const applied = await migrateToLatest(dialect);
    process.stdout.write(
      applied.length === 0
        ? `${describeLocation(config.database)} is up to date\n`
        : `applied ${applied.join(', ')} to ${describeLocation(config.database)}\n`,
    );
    return 0;
  } finally {
    await dialect.close();
  }
}
