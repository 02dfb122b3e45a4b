// `countersign purge --older-than 7d [--dry-run]`: the retention purge by hand, straight in the
// database (so it works with or without a running server), in the same small transactions as the
// background purge. A progress bar on stderr when stderr is a terminal; the counts on stdout.
import {
  ConfigError,
  type Flags,
  formatDuration,
  loadConfig,
  parseBoundedDuration,
  RETENTION_RANGE,
} from '../config.js';
import { toIsoSeconds } from '../domain/time.js';
import { openStore } from '../store/kysely-store.js';
import { openDialect } from '../store/open.js';
import type { PurgeCursor } from '../store/store.js';
import { requireExistingDatabase } from './require-database.js';

/** Old events one transaction looks at, as in the background purge. */
const BATCH = 500;

export interface PurgeOptions {
  olderThan: string | undefined;
  dryRun: boolean;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export async function purgeCommand(flags: Flags, options: PurgeOptions): Promise<number> {
  if (options.olderThan === undefined) {
    throw new ConfigError('purge needs --older-than, e.g. --older-than 30d; see "countersign purge --help"');
  }
  // Checked before the database is opened: a usage error should not depend on the database.
  const ageMs = parseBoundedDuration('--older-than', options.olderThan, RETENTION_RANGE);
  const config = loadConfig(flags);
  requireExistingDatabase(config.database);
  const store = await openStore(openDialect(config.database));
  try {
    const cutoff = Date.now() - ageMs;
    const total = await store.countEventsOlderThan(cutoff);
    let bar: import('cli-progress').SingleBar | undefined;
    if (process.stderr.isTTY && total > 0) {
      const { SingleBar } = await import('cli-progress');
      bar = new SingleBar({
        format: `${options.dryRun ? 'counting' : 'purging'} [{bar}] {value}/{total} old events`,
        hideCursor: true,
      });
      bar.start(total, 0);
    }
    const totals = { examined: 0, events: 0, deliveries: 0, attempts: 0 };
    try {
      let after: PurgeCursor | undefined;
      do {
        const batch = options.dryRun
          ? await store.countPurgeable(cutoff, BATCH, after)
          : await store.purgeOlderThan(cutoff, BATCH, after);
        totals.examined += batch.examined;
        totals.events += batch.events;
        totals.deliveries += batch.deliveries;
        totals.attempts += batch.attempts;
        bar?.update(Math.min(totals.examined, total));
        after = batch.next;
      } while (after);
    } finally {
      bar?.stop();
    }
    const what = `${plural(totals.events, 'event', 'events')}, ${plural(totals.deliveries, 'delivery', 'deliveries')} and ${plural(totals.attempts, 'attempt', 'attempts')}`;
    const kept = totals.examined - totals.events;
    process.stdout.write(
      `${options.dryRun ? 'would remove' : 'removed'} ${what} created before ${toIsoSeconds(cutoff)} (older than ${formatDuration(ageMs)})` +
        `${options.dryRun ? '; nothing was changed' : ''}\n` +
        (kept > 0
          ? `kept ${plural(kept, 'older event', 'older events')} with deliveries not yet made (pending, sending, held or waiting)\n`
          : ''),
    );
    return 0;
  } finally {
    await store.close();
  }
}
