// Secrets at rest, as a whole: re-sealing every one of them under a new master key (in the caller's
// transaction), and finding one to test a key against. The sealed values live in callbacks
// (credentials and the signing secret with those it retired), subscriptions (secret_token, the
// signing secret and those it retired), and in countersign_settings the master-key check and the
// key that signs audit links.
import { type Kysely, sql } from 'kysely';
import { callbackSeal, type SealContext, settingSeal, subscriptionSeal } from '../domain/secret-box.js';
import { resealRetired } from '../domain/secret-rotation.js';
import type { Database } from './schema.js';

export const MASTER_KEY_CHECK = 'master_key_check';
/** The key audit links are signed with (random, sealed): a master-key rotation keeps old links working. */
export const AUDIT_LINK_KEY = 'audit_link_key';
/** The audit chain's key and when it was made, sealed together (domain/audit-chain.ts). */
export const AUDIT_CHAIN_KEY = 'audit_chain_key';

/** Re-seals one value, told where it belongs. */
export type Reseal = (sealed: string, context: SealContext) => string;

/** Every setting that holds a sealed value. */
const SEALED_SETTINGS = [MASTER_KEY_CHECK, AUDIT_LINK_KEY, AUDIT_CHAIN_KEY];

/** Re-seals every sealed value with `reseal`; returns how many values it re-sealed (secrets, not settings). */
export async function resealAll(trx: Kysely<Database>, reseal: Reseal): Promise<number> {
  let count = 0;
  const again = (value: string | null, context: SealContext) => {
    if (value === null) return null;
    count++;
    return reseal(value, context);
  };
  const retiredAgain = (json: string, context: SealContext) => {
    const out = resealRetired(json, (sealed) => reseal(sealed, context));
    count += out.count;
    return out.json;
  };
  const callbacks = await trx
    .selectFrom('callbacks')
    .select(['account_id', 'password_sealed', 'bearer_token_sealed', 'signing_secret_sealed', 'retired_secrets'])
    .execute();
  for (const cb of callbacks) {
    const signing = callbackSeal('signing_secret', cb.account_id);
    await trx
      .updateTable('callbacks')
      .set({
        password_sealed: again(cb.password_sealed, callbackSeal('password', cb.account_id)),
        bearer_token_sealed: again(cb.bearer_token_sealed, callbackSeal('bearer_token', cb.account_id)),
        signing_secret_sealed: again(cb.signing_secret_sealed, signing),
        retired_secrets: retiredAgain(cb.retired_secrets, signing),
      })
      .where('account_id', '=', cb.account_id)
      .execute();
  }
  const subs = await trx
    .selectFrom('subscriptions')
    .select(['id', 'account_id', 'secret_token_sealed', 'signing_secret_sealed', 'retired_secrets'])
    .execute();
  for (const sub of subs) {
    const signing = subscriptionSeal('signing_secret', sub);
    await trx
      .updateTable('subscriptions')
      .set({
        secret_token_sealed: again(sub.secret_token_sealed, subscriptionSeal('secret_token', sub)),
        signing_secret_sealed: again(sub.signing_secret_sealed, signing) as string,
        retired_secrets: retiredAgain(sub.retired_secrets, signing),
      })
      .where('id', '=', sub.id)
      .execute();
  }
  // The check is not a secret of anyone's, so it does not count; nor are the audit keys.
  const settings = await trx
    .selectFrom('countersign_settings')
    .select(['key', 'value'])
    .where('key', 'in', SEALED_SETTINGS)
    .execute();
  for (const setting of settings) {
    await trx
      .updateTable('countersign_settings')
      .set({ value: reseal(setting.value, settingSeal(setting.key)) })
      .where('key', '=', setting.key)
      .execute();
  }
  return count;
}

/**
 * Whether any value is still sealed the way it was before values were bound to their rows
 * (`v1.…`): one indexed-free scan per table, made once at start.
 */
export async function anyLegacySealed(db: Kysely<Database>): Promise<boolean> {
  const legacy = (column: string) => sql<boolean>`${sql.ref(column)} like 'v1.%'`;
  const retired = sql<boolean>`retired_secrets like '%"v1.%'`;
  const sub = await db
    .selectFrom('subscriptions')
    .select('id')
    .where((eb) => eb.or([legacy('secret_token_sealed'), legacy('signing_secret_sealed'), retired]))
    .limit(1)
    .executeTakeFirst();
  if (sub) return true;
  const cb = await db
    .selectFrom('callbacks')
    .select('account_id')
    .where((eb) =>
      eb.or([legacy('password_sealed'), legacy('bearer_token_sealed'), legacy('signing_secret_sealed'), retired]),
    )
    .limit(1)
    .executeTakeFirst();
  if (cb) return true;
  const setting = await db
    .selectFrom('countersign_settings')
    .select('key')
    .where('key', 'in', SEALED_SETTINGS)
    .where(legacy('value'))
    .limit(1)
    .executeTakeFirst();
  return setting !== undefined;
}

/** Any one sealed value stored, with where it belongs, or undefined when the database holds none yet. */
export async function anySealedSecret(
  db: Kysely<Database>,
): Promise<{ sealed: string; context: SealContext } | undefined> {
  const check = await db
    .selectFrom('countersign_settings')
    .select('value')
    .where('key', '=', MASTER_KEY_CHECK)
    .executeTakeFirst();
  if (check) return { sealed: check.value, context: settingSeal(MASTER_KEY_CHECK) };
  const sub = await db
    .selectFrom('subscriptions')
    .select(['id', 'account_id', 'signing_secret_sealed'])
    .limit(1)
    .executeTakeFirst();
  if (sub) return { sealed: sub.signing_secret_sealed, context: subscriptionSeal('signing_secret', sub) };
  const cb = await db
    .selectFrom('callbacks')
    .select(['account_id', 'password_sealed', 'bearer_token_sealed', 'signing_secret_sealed'])
    .where((eb) =>
      eb.or([
        eb('password_sealed', 'is not', null),
        eb('bearer_token_sealed', 'is not', null),
        eb('signing_secret_sealed', 'is not', null),
      ]),
    )
    .limit(1)
    .executeTakeFirst();
  if (!cb) return undefined;
  if (cb.password_sealed !== null)
    return { sealed: cb.password_sealed, context: callbackSeal('password', cb.account_id) };
  if (cb.bearer_token_sealed !== null) {
    return { sealed: cb.bearer_token_sealed, context: callbackSeal('bearer_token', cb.account_id) };
  }
  return { sealed: cb.signing_secret_sealed as string, context: callbackSeal('signing_secret', cb.account_id) };
}
