// Throttling per subscription. A subscription with rate_limit_per_second gets evenly spaced send
// slots, one every 1/rate second, from one counter in the database (throttle_slots.next_us), so
// every process that claims its deliveries shares the same budget. A claim that took some of its
// deliveries reserves slots for them inside a short horizon, each delivery carrying its slot as
// `notBefore` for the dispatcher to wait for; the ones that found no slot go back to the queue due
// at the next free slot, without counting an attempt, and so does the rest of the subscription's
// backlog that is due now, so that later claim rounds are not spent on it. Other subscriptions'
// deliveries are claimed beside them as ever: nothing here waits for a throttled subscription.
//
// The slots are PACE_FACTOR wider than the limit asks: a send leaves a little after its slot (the
// dispatcher gives one back rather than send it more than LATE_MS late), and the receiver sees it
// a little later still, so exact spacing would now and then put one delivery more than the limit
// into some second at the receiver. 10 % leaves 100 ms a second for that: the loaded 2-core test
// machines saw 21 in a second at 5 %.
import { type Kysely, sql } from 'kysely';
import type { StoreDialect } from '../dialect.js';
import type { Database } from '../schema.js';
import type { ClaimedDelivery } from '../store.js';
import { ofEndpoint } from './endpoints.js';

/** Slots are this much wider than 1/rate: the margin absorbs lateness on the way to the receiver. */
export const PACE_FACTOR = 1.1;
/** How far ahead a claim reserves slots. */
const HORIZON_US = 250_000;
/** A throttled send that could not start within this long after its slot is given back instead. */
export const LATE_MS = 20;

export function slotMicros(ratePerSecond: number): number {
  return Math.ceil((1_000_000 / ratePerSecond) * PACE_FACTOR);
}

interface Group {
  rate: number;
  deliveries: ClaimedDelivery[];
}

/**
 * Gives each claimed delivery of a throttled subscription its send slot (`notBefore`), and hands
 * back to the queue those for which there was none. Returns the deliveries to send.
 */
export async function applyThrottles(
  dialect: StoreDialect,
  owner: string,
  claimed: ClaimedDelivery[],
  rates: Map<string, number>,
  now: number,
): Promise<ClaimedDelivery[]> {
  if (rates.size === 0) return claimed;
  const groups = new Map<string, Group>();
  const out: ClaimedDelivery[] = [];
  for (const d of claimed) {
    const rate = d.subscriptionId === null ? undefined : rates.get(d.subscriptionId);
    if (rate === undefined) {
      out.push(d);
      continue;
    }
    let group = groups.get(d.subscriptionId as string);
    if (!group) {
      group = { rate, deliveries: [] };
      groups.set(d.subscriptionId as string, group);
    }
    group.deliveries.push(d);
  }
  for (const [subscriptionId, group] of groups) {
    // Oldest first: the slots go in publish order.
    group.deliveries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const slots = await reserve(dialect, owner, subscriptionId, group, now);
    // Even a slot that is due now is carried: a send that starts late for it must not go.
    for (const [i, slot] of slots.entries()) out.push({ ...(group.deliveries[i] as ClaimedDelivery), notBefore: slot });
  }
  return out;
}

/**
 * In one transaction: takes as many slots as fit in the horizon (at most one per delivery),
 * gives back the deliveries left without one, and moves the rest of the subscription's due
 * backlog to the next free slot. Returns the slots taken (ms), in order.
 */
async function reserve(
  dialect: StoreDialect,
  owner: string,
  subscriptionId: string,
  group: Group,
  now: number,
): Promise<number[]> {
  const step = slotMicros(group.rate);
  const nowUs = now * 1000;
  return dialect.writeTransaction(async (trx) => {
    await trx
      .insertInto('throttle_slots')
      .values({ subscription_id: subscriptionId, next_us: 0 })
      .onConflict((oc) => oc.column('subscription_id').doNothing())
      .execute();
    // PostgreSQL: the row lock makes every other claim of this subscription wait its turn here.
    const row = await trx
      .selectFrom('throttle_slots')
      .select('next_us')
      .where('subscription_id', '=', subscriptionId)
      .$if(dialect.name === 'postgres', (q) => q.forUpdate())
      .executeTakeFirstOrThrow();
    const base = Math.max(row.next_us, nowUs);
    const fit = Math.max(0, Math.ceil((nowUs + HORIZON_US - base) / step));
    const taken = Math.min(fit, group.deliveries.length);
    const next = base + taken * step;
    if (taken > 0) {
      await trx
        .updateTable('throttle_slots')
        .set({ next_us: next })
        .where('subscription_id', '=', subscriptionId)
        .execute();
    }
    const slots: number[] = [];
    for (let i = 0; i < taken; i++) slots.push((base + i * step) / 1000);
    if (taken < group.deliveries.length) {
      const dueAt = Math.ceil(next / 1000);
      await giveBack(
        trx,
        owner,
        group.deliveries.slice(taken).map((d) => d.id),
        dueAt,
        now,
      );
      // The rest of the backlog due before the next free slot would only be claimed and given
      // back again: it becomes due at that slot instead.
      // Written to match the partial queue index (deliveries_due), so the subscription's history is
      // never scanned.
      await trx
        .updateTable('deliveries')
        .set({ next_attempt_at: dueAt })
        .where(sql<boolean>`status in ('pending', 'sending') and listen = 0`)
        .where('next_attempt_at', '<', dueAt)
        .where('status', '=', 'pending')
        .where(ofEndpoint(subscriptionId))
        .execute();
    }
    return slots;
  });
}

/** Back to the queue, due at `dueAt`, without the attempt the claim counted. */
async function giveBack(trx: Kysely<Database>, owner: string, ids: string[], dueAt: number, now: number) {
  await trx
    .updateTable('deliveries')
    .set((eb) => ({
      status: 'pending',
      lease_owner: null,
      next_attempt_at: dueAt,
      attempt_count: eb('attempt_count', '-', 1),
      updated_at: now,
    }))
    .where('id', 'in', ids)
    .where('status', '=', 'sending')
    .where('lease_owner', '=', owner)
    .execute();
}
