// Secrets at rest, as a whole: re-sealing every one of them under a new master key (in the caller's
// transaction), and finding one to test a key against. The sealed values live in callbacks
// (credentials and the signing secret with those it retired), subscriptions (secret_token, the
// signing secret and those it retired), and in countersign_settings the master-key check and the
// key that signs audit links.
import type { Kysely } from 'kysely';
import { resealRetired } from '../domain/secret-rotation.js';
import type { Database } from './schema.js';

export const MASTER_KEY_CHECK = 'master_key_check';
/** The key audit links are signed with (random, sealed): a master-key rotation keeps old links working. */
export const AUDIT_LINK_KEY = 'audit_link_key';
/** The audit chain's key and when it was made, sealed together (domain/audit-chain.ts). */
export const AUDIT_CHAIN_KEY = 'audit_chain_key';

/** Re-seals every sealed value with `reseal`; returns how many values it re-sealed. */
export async function resealAll(trx: Kysely<Database>, reseal: (sealed: string) => string): Promise<number> {
  let count = 0;
  const again = (value: string | null) => {
    if (value === null) return null;
    count++;
    return reseal(value);
  };
  const retiredAgain = (json: string) => {
    const out = resealRetired(json, reseal);
    count += out.count;
    return out.json;
  };
  const callbacks = await trx
    .selectFrom('callbacks')
    .select(['account_id', 'password_sealed', 'bearer_token_sealed', 'signing_secret_sealed', 'retired_secrets'])
    .execute();
  for (const cb of callbacks) {
    await trx
      .updateTable('callbacks')
      .set({
        password_sealed: again(cb.password_sealed),
        bearer_token_sealed: again(cb.bearer_token_sealed),
        signing_secret_sealed: again(cb.signing_secret_sealed),
        retired_secrets: retiredAgain(cb.retired_secrets),
      })
      .where('account_id', '=', cb.account_id)
      .execute();
  }
  const subs = await trx
    .selectFrom('subscriptions')
    .select(['id', 'secret_token_sealed', 'signing_secret_sealed', 'retired_secrets'])
    .execute();
  for (const sub of subs) {
    await trx
      .updateTable('subscriptions')
      .set({
        secret_token_sealed: again(sub.secret_token_sealed),
        signing_secret_sealed: again(sub.signing_secret_sealed) as string,
        retired_secrets: retiredAgain(sub.retired_secrets),
      })
      .where('id', '=', sub.id)
      .execute();
  }
  // The check is not a secret of anyone's, so it does not count; nor is the audit-link key.
  const settings = await trx
    .selectFrom('countersign_settings')
    .select(['key', 'value'])
    .where('key', 'in', [MASTER_KEY_CHECK, AUDIT_LINK_KEY, AUDIT_CHAIN_KEY])
    .execute();
  for (const setting of settings) {
    await trx
      .updateTable('countersign_settings')
      .set({ value: reseal(setting.value) })
      .where('key', '=', setting.key)
      .execute();
  }
  return count;
}

/** Any one sealed value stored, or undefined when the database holds none yet. */
export async function anySealedSecret(db: Kysely<Database>): Promise<string | undefined> {
  const check = await db
    .selectFrom('countersign_settings')
    .select('value')
    .where('key', '=', MASTER_KEY_CHECK)
    .executeTakeFirst();
  if (check) return check.value;
  const sub = await db.selectFrom('subscriptions').select('signing_secret_sealed').limit(1).executeTakeFirst();
  if (sub) return sub.signing_secret_sealed;
  const cb = await db
    .selectFrom('callbacks')
    .select(['password_sealed', 'bearer_token_sealed', 'signing_secret_sealed'])
    .where((eb) =>
      eb.or([
        eb('password_sealed', 'is not', null),
        eb('bearer_token_sealed', 'is not', null),
        eb('signing_secret_sealed', 'is not', null),
      ]),
    )
    .limit(1)
    .executeTakeFirst();
  return cb ? (cb.password_sealed ?? cb.bearer_token_sealed ?? cb.signing_secret_sealed ?? undefined) : undefined;
}
