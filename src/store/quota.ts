// Quotas, counted in the transaction that would pass them.
import type { Kysely } from 'kysely';
import { CountersignError } from '../errors.js';
import type { StoreDialect } from './dialect.js';
import type { Database } from './schema.js';

/**
 * In a write transaction about to add to what an account holds: holds the account's row (FOR
 * UPDATE on PostgreSQL; SQLite has one writer), so that two writers cannot both take its last
 * place, then refuses with a 409 quota_exceeded saying `refusal` once `held()` has reached `max`.
 */
export async function refuseAtQuota(
  trx: Kysely<Database>,
  dialect: StoreDialect,
  accountId: string,
  max: number,
  held: () => Promise<number>,
  refusal: string,
): Promise<void> {
  await trx
    .selectFrom('accounts')
    .select('id')
    .where('id', '=', accountId)
    .$if(dialect.name === 'postgres', (q) => q.forUpdate())
    .execute();
  if ((await held()) >= max) throw new CountersignError('quota_exceeded', refusal);
}
