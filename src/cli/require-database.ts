// The commands that use a database someone already set up (worker, token, rotate-master-key)
// refuse a SQLite file that is not there. Opening it would create an empty one: a typo in
// DATABASE_URL would then look like a service with no tokens, or a worker waiting forever on a
// queue nothing publishes to. `serve` and `migrate` are the commands that create it.
import { existsSync } from 'node:fs';
import type { DatabaseLocation } from '../store/open.js';

export function requireExistingDatabase(location: DatabaseLocation): void {
  if (location.kind !== 'sqlite' || location.path === ':memory:') return;
  if (!existsSync(location.path)) {
    throw new Error(
      `no database at ${location.path}; run "countersign migrate" (or start "countersign serve") to create it`,
    );
  }
}
