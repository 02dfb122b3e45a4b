// Queue figures for the metrics: what is due now, how long the oldest due delivery has waited, how
// many deliveries are in each status that is still work (pending, sending, held, failed, waiting,
// postponed), and how many circuits are tripped. Each query reads a partial index only
// (deliveries_due, deliveries_attention, deliveries_waiting, deliveries_postponed,
// endpoint_circuits_tripped), never the table's history of delivered rows; the predicates are SQL
// literals so SQLite's planner matches them.
import { sql } from 'kysely';
import type { StoreDialect } from '../dialect.js';
import type { QueueStats } from '../store.js';
import { CLAIMABLE } from './endpoints.js';

export async function queueStats(dialect: StoreDialect, now: number): Promise<QueueStats> {
  const { db } = dialect;
  const due = await db
    .selectFrom('deliveries')
    .select((eb) => [eb.fn.countAll<number | string>().as('n'), eb.fn.min('next_attempt_at').as('oldest')])
    .where(CLAIMABLE)
    .where('next_attempt_at', '<=', now)
    .executeTakeFirst();
  const counts = await db
    .selectFrom('deliveries')
    .select((eb) => ['status', eb.fn.countAll<number | string>().as('n')])
    .where(CLAIMABLE)
    .groupBy('status')
    .execute();
  const attention = await db
    .selectFrom('deliveries')
    .select((eb) => ['status', eb.fn.countAll<number | string>().as('n')])
    .where(sql<boolean>`status in ('held', 'failed')`)
    .groupBy('status')
    .execute();
  const waiting = await db
    .selectFrom('deliveries')
    .select((eb) => [sql<string>`'waiting'`.as('status'), eb.fn.countAll<number | string>().as('n')])
    .where(sql<boolean>`status = 'waiting'`)
    .execute();
  const postponed = await db
    .selectFrom('deliveries')
    .select((eb) => [sql<string>`'postponed'`.as('status'), eb.fn.countAll<number | string>().as('n')])
    .where(sql<boolean>`status = 'postponed'`)
    .execute();
  const tripped = await db
    .selectFrom('endpoint_circuits')
    .select((eb) => ['state', eb.fn.countAll<number | string>().as('n')])
    .where('state', '<>', 'closed')
    .groupBy('state')
    .execute();
  const circuits: QueueStats['circuits'] = { open: 0, half_open: 0 };
  for (const row of tripped) if (row.state !== 'closed') circuits[row.state] = Number(row.n);
  const byStatus: QueueStats['byStatus'] = { pending: 0, sending: 0, held: 0, failed: 0, waiting: 0, postponed: 0 };
  for (const row of [...counts, ...attention, ...waiting, ...postponed]) {
    if (row.status in byStatus) byStatus[row.status as keyof QueueStats['byStatus']] = Number(row.n);
  }
  const oldest = due?.oldest;
  return {
    due: Number(due?.n ?? 0),
    oldestDueAt: oldest === null || oldest === undefined ? undefined : Number(oldest),
    byStatus,
    circuits,
  };
}
