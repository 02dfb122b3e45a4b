// Release: hand claimed deliveries back to the queue, due now, without counting an attempt. Used
// on graceful shutdown for claims that were never sent.
import { sql } from 'kysely';
import type { StoreDialect } from '../dialect.js';

export async function releaseClaims(
  dialect: StoreDialect,
  owner: string,
  deliveryIds: string[] | 'all',
  now: number,
): Promise<number> {
  if (deliveryIds !== 'all' && deliveryIds.length === 0) return 0;
  const result = await dialect.db
    .updateTable('deliveries')
    .set({
      status: 'pending',
      lease_owner: null,
      next_attempt_at: now,
      attempt_count: sql`attempt_count - 1`,
      updated_at: now,
    })
    .where('status', '=', 'sending')
    .where('lease_owner', '=', owner)
    .$if(deliveryIds !== 'all', (q) => q.where('id', 'in', deliveryIds as string[]))
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
