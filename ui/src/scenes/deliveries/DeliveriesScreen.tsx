// The delivery log, filtered by status, subscription, event and time window. The filters live in
// the URL, so a filtered view can be shared, and back and forward step through filters.

import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { DELIVERY_STATUSES, type DeliveryQuery, type DeliveryStatus, queries } from '../../api/queries';
import { isoFromLocal, localFromDate } from '../../common/bits';
import { useResource } from '../../common/use-resource';
import { DeliveryTable } from './DeliveryTable';

const FILTERS = ['status', 'subscription_id', 'event_id', 'since', 'until'] as const;

export function DeliveriesScreen() {
  const { query, route } = useLocation();
  const applied: DeliveryQuery = { limit: 25 };
  for (const name of FILTERS) {
    const value = query[name];
    if (value) (applied as Record<string, string | number>)[name] = value;
  }
  return (
    <>
      <h1>Deliveries</h1>
      <Filters
        key={JSON.stringify(applied)}
        applied={applied}
        onApply={(next) => {
          const params = new URLSearchParams();
          for (const name of FILTERS) {
            const value = next[name];
            if (value) params.set(name, String(value));
          }
          const search = params.toString();
          route(search ? `/ui/deliveries?${search}` : '/ui/deliveries');
        }}
      />
      <DeliveryTable
        query={applied}
        emptyText={
          Object.keys(applied).length > 1
            ? 'No deliveries match these filters.'
            : 'No deliveries yet. They appear here as soon as an event is published to a subscription or the callback.'
        }
      />
    </>
  );
}

function Filters({ applied, onApply }: { applied: DeliveryQuery; onApply: (q: DeliveryQuery) => void }) {
  const subscriptions = useResource(() => queries.subscriptions({ limit: 100 }), []);
  const [status, setStatus] = useState(applied.status ?? '');
  const [subscription, setSubscription] = useState(applied.subscription_id ?? '');
  const [event, setEvent] = useState(applied.event_id ?? '');
  const [since, setSince] = useState(applied.since ? localFromDate(new Date(applied.since)) : '');
  const [until, setUntil] = useState(applied.until ? localFromDate(new Date(applied.until)) : '');
  return (
    <form
      class="filters-form"
      aria-label="Filter deliveries"
      onSubmit={(e) => {
        e.preventDefault();
        onApply({
          ...(status ? { status: status as DeliveryStatus } : {}),
          ...(subscription ? { subscription_id: subscription } : {}),
          ...(event.trim() ? { event_id: event.trim() } : {}),
          ...(isoFromLocal(since) ? { since: isoFromLocal(since) } : {}),
          ...(isoFromLocal(until) ? { until: isoFromLocal(until) } : {}),
        });
      }}
    >
      <div class="field">
        <label for="f-status">Status</label>
        <select id="f-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">any</option>
          {DELIVERY_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-subscription">Subscription</label>
        <select id="f-subscription" value={subscription} onChange={(e) => setSubscription(e.currentTarget.value)}>
          <option value="">any</option>
          {subscriptions.data?.subscriptions.map((s) => (
            <option key={s.id} value={s.id}>
              {s.target_url} ({s.event_types.join(', ')})
            </option>
          ))}
          {subscription && !subscriptions.data?.subscriptions.some((s) => s.id === subscription) ? (
            <option value={subscription}>{subscription}</option>
          ) : null}
        </select>
      </div>
      <div class="field">
        <label for="f-event">Event id</label>
        <input id="f-event" value={event} placeholder="evt_…" onInput={(e) => setEvent(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="f-since">Created from</label>
        <input id="f-since" type="datetime-local" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="f-until">Created before</label>
        <input id="f-until" type="datetime-local" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
      </div>
      <div class="field field-buttons">
        <button type="submit">Filter</button>
        <button type="button" class="secondary" onClick={() => onApply({})}>
          Clear
        </button>
      </div>
    </form>
  );
}
