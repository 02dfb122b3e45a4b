// Renew: extend the leases of deliveries this process is still sending, so a send that outlasts
// the lease is never claimed again (and sent twice) while it is in flight. Only rows still leased
// to this owner move; one taken over or cancelled meanwhile stays as it is.
import type { StoreDialect } from '../dialect.js';
import { chunk } from './chunk.js';

export async function renewLeases(
  dialect: StoreDialect,
  owner: string,
  deliveryIds: string[],
  now: number,
  leaseMs: number,
): Promise<number> {
  let renewed = 0;
  for (const ids of chunk(deliveryIds, 500)) {
    const result = await dialect.db
      .updateTable('deliveries')
      .set({ next_attempt_at: now + leaseMs })
      .where('id', 'in', ids)
      .where('status', '=', 'sending')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    renewed += Number(result.numUpdatedRows);
  }
  return renewed;
}
