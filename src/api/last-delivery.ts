// A subscription's latest delivery and that delivery's latest attempt, for the subscription views
// of GET /v1/webhooks/subscriptions (one page) and GET …/{id}: enough for a list to show how each
// target is doing without a request per row. The POST answer stays as the seed documents it.
import { type Static, Type } from '@sinclair/typebox';
import { toIsoMillis } from '../domain/time.js';
import type { Attempt, Store } from '../store/store.js';
import { DeliveryStatus } from './deliveries.js';

export const LastDeliveryView = Type.Union(
  [
    Type.Object({
      id: Type.String(),
      status: DeliveryStatus,
      created_at: Type.String({ format: 'date-time' }),
      last_attempt: Type.Union(
        [
          Type.Object({
            started_at: Type.String({ format: 'date-time' }),
            status_code: Type.Union([Type.Integer(), Type.Null()]),
            error: Type.Union([Type.String(), Type.Null()]),
          }),
          Type.Null(),
        ],
        { description: 'null before the first attempt' },
      ),
    }),
    Type.Null(),
  ],
  { description: 'the subscription’s most recent delivery; null when it has had none' },
);
type LastDeliveryView = Static<typeof LastDeliveryView>;

/** The last delivery of each subscription, by id (null for those that have none). */
export async function lastDeliveries(
  store: Store,
  accountId: string,
  subscriptionIds: string[],
): Promise<(id: string) => LastDeliveryView> {
  const latest = await store.latestDeliveries(accountId, subscriptionIds);
  const attempts = await store.listAttempts([...latest.values()].map((d) => d.id));
  // listAttempts orders each delivery's attempts by number: the last one seen is the latest.
  const lastAttempt = new Map<string, Attempt>();
  for (const a of attempts) lastAttempt.set(a.delivery_id, a);
  return (id) => {
    const d = latest.get(id);
    if (!d) return null;
    const a = lastAttempt.get(d.id);
    return {
      id: d.id,
      status: d.status,
      created_at: toIsoMillis(d.created_at),
      last_attempt: a ? { started_at: toIsoMillis(a.started_at), status_code: a.status_code, error: a.error } : null,
    };
  };
}
