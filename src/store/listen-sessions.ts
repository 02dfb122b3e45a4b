// Listen sessions (`countersign listen`): subscriptions of kind `listen`, one per API token, whose
// deliveries go down a stream to the CLI instead of being POSTed from the server. One row per token
// lives on across runs, so its signing secret (and the local app's configuration) never changes:
// opening a session makes the row or brings it back with the event types asked for; ending one
// disables the row and cancels what it has not delivered. Fan-out, signing, retries and the
// delivery log treat the row as any subscription; its deliveries carry `listen = 1`, so only the
// process holding its stream claims them (migrations/005_listen.ts).
import { sql } from 'kysely';
import { joinEventTypes } from '../domain/events.js';
import type { StoreDialect } from './dialect.js';
import { type SubscriptionsTable, UNFINISHED_STATUSES } from './schema.js';
import { writeTypeRows } from './subscriptions.js';

/** The target_url a token's listen session is kept under: unique per token, never a URL sent to. */
export const listenTarget = (tokenId: string): string => `listen:${tokenId}`;

export const ENDED_REASON = 'the listen session ended';

export interface OpenListenSession {
  accountId: string;
  tokenId: string;
  eventTypes: string[];
  /** The id of a session made now, and its secret, sealed for that id; an existing session keeps its own. */
  newId: string;
  newSigningSecretSealed: string;
  now: number;
}

/** The token's session, made or brought back (active, with these event types). */
export function openListenSession(d: StoreDialect, input: OpenListenSession): Promise<SubscriptionsTable> {
  const { accountId, now } = input;
  return d.writeTransaction(async (trx) => {
    const current = await trx
      .selectFrom('subscriptions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('kind', '=', 'listen')
      .where('target_url', '=', listenTarget(input.tokenId))
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    const eventTypes = joinEventTypes(input.eventTypes);
    if (current) {
      const changes = {
        event_types: eventTypes,
        status: 'active' as const,
        disabled_reason: null,
        failing_since: null,
        listen_seen_at: now,
        updated_at: now,
      };
      await trx.updateTable('subscriptions').set(changes).where('id', '=', current.id).execute();
      const next = { ...current, ...changes };
      if (current.event_types !== eventTypes) await writeTypeRows(trx, next);
      return next;
    }
    const session: SubscriptionsTable = {
      id: input.newId,
      account_id: accountId,
      target_url: listenTarget(input.tokenId),
      event_types: eventTypes,
      status: 'active',
      secret_token_sealed: null,
      signing_secret_sealed: input.newSigningSecretSealed,
      retired_secrets: '[]',
      disabled_reason: null,
      failing_since: null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      kind: 'listen',
      listen_seen_at: now,
      rate_limit_per_second: null,
      ordering: 'none',
    };
    await trx.insertInto('subscriptions').values(session).execute();
    await writeTypeRows(trx, session);
    return session;
  });
}

export function getListenSession(
  d: StoreDialect,
  accountId: string,
  id: string,
): Promise<SubscriptionsTable | undefined> {
  return d.db
    .selectFrom('subscriptions')
    .selectAll()
    .where('id', '=', id)
    .where('account_id', '=', accountId)
    .where('kind', '=', 'listen')
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
}

/**
 * Ends a session: it takes no new deliveries, and those not yet made are cancelled. Returns how
 * many were cancelled, or undefined when the session is not this account's.
 */
export function endListenSession(
  d: StoreDialect,
  accountId: string,
  id: string,
  now: number,
  reason = ENDED_REASON,
  /** End it only if no stream has been connected since (the idle sweep; a reconnect wins). */
  idleBefore?: number,
): Promise<number | undefined> {
  return d.writeTransaction(async (trx) => {
    const result = await trx
      .updateTable('subscriptions')
      .set({ status: 'disabled', disabled_reason: reason, updated_at: now })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('kind', '=', 'listen')
      .where('deleted_at', 'is', null)
      .$if(idleBefore !== undefined, (q) =>
        q.where('status', '=', 'active').where(sql<boolean>`coalesce(listen_seen_at, updated_at) < ${idleBefore}`),
      )
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return undefined;
    const cancelled = await trx
      .updateTable('deliveries')
      .set({ status: 'cancelled', lease_owner: null, updated_at: now })
      .where('subscription_id', '=', id)
      .where('status', 'in', UNFINISHED_STATUSES)
      .executeTakeFirst();
    return Number(cancelled.numUpdatedRows);
  });
}

/** Marks these sessions' streams as connected now. */
export async function touchListenSessions(d: StoreDialect, ids: string[], now: number): Promise<void> {
  if (ids.length === 0) return;
  await d.db.updateTable('subscriptions').set({ listen_seen_at: now }).where('id', 'in', ids).execute();
}

/** Ends the active sessions no stream has been connected to since `before`; returns them. */
export async function endIdleListenSessions(
  d: StoreDialect,
  before: number,
  now: number,
  reason: string,
): Promise<{ id: string; accountId: string; cancelled: number }[]> {
  const idle = await d.db
    .selectFrom('subscriptions')
    .select(['id', 'account_id'])
    .where('kind', '=', 'listen')
    .where('status', '=', 'active')
    .where('deleted_at', 'is', null)
    .where(sql<boolean>`coalesce(listen_seen_at, updated_at) < ${before}`)
    .limit(100)
    .execute();
  const ended: { id: string; accountId: string; cancelled: number }[] = [];
  for (const row of idle) {
    const cancelled = await endListenSession(d, row.account_id, row.id, now, reason, before);
    if (cancelled !== undefined) ended.push({ id: row.id, accountId: row.account_id, cancelled });
  }
  return ended;
}
