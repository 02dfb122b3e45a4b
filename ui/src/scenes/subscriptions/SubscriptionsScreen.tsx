// Subscriptions: the list, with each one's status and its latest delivery, and the form that
// creates one. The signing secret of a new subscription is shown once, with a copy button.

import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import {
  type CreatedSubscription,
  EVENT_TYPES,
  type EventType,
  OPERATIONAL_EVENT_TYPES,
  queries,
  type SubscriptionPage,
} from '../../api/queries';
import { Empty, ErrorNotice, Loading, LoadMore, SecretOnce, Status, TableFrame, Time } from '../../common/bits';
import { CircuitBadge } from '../../common/Circuit';
import { usePages } from '../../common/use-resource';

const ALL_TYPES = 'all';
const ALL_OPERATIONAL = 'all-operational';

export function SubscriptionsScreen() {
  const { query, route } = useLocation();
  const status = query.status as 'active' | 'paused' | 'disabled' | undefined;
  const { first, pages, cursor, moreError, more } = usePages<SubscriptionPage>(
    (at) =>
      queries.subscriptions({ limit: 50, ...(at === undefined ? {} : { cursor: at }), ...(status ? { status } : {}) }),
    [status],
  );
  const [created, setCreated] = useState<CreatedSubscription | undefined>(undefined);
  const subscriptions = pages.flatMap((p) => p.subscriptions);

  return (
    <>
      <h1>Subscriptions</h1>
      {created ? (
        <SecretOnce
          title={`Subscription created. Its signing secret:`}
          secret={created.signing_secret}
          onDone={() => setCreated(undefined)}
        />
      ) : null}
      <CreateSubscription
        onCreated={(s) => {
          setCreated(s);
          first.reload();
        }}
      />

      <section aria-labelledby="list">
        <h2 id="list">Your subscriptions</h2>
        <p class="filters">
          <label for="status-filter">Status</label>
          <select
            id="status-filter"
            value={status ?? ''}
            onChange={(e) => {
              const v = e.currentTarget.value;
              route(v ? `/ui/subscriptions?status=${v}` : '/ui/subscriptions');
            }}
          >
            <option value="">any</option>
            <option value="active">active</option>
            <option value="paused">paused</option>
            <option value="disabled">disabled</option>
          </select>
        </p>
        <ErrorNotice error={first.error ?? moreError} />
        {first.loading && pages.length === 0 ? <Loading /> : null}
        {!first.loading && subscriptions.length === 0 && !first.error ? (
          status ? (
            <Empty title={`No ${status} subscriptions.`} />
          ) : (
            <Empty title="No subscriptions yet.">
              Create one above: give the HTTPS address where you receive webhooks and the event it should get. Every
              event of that type is then delivered there, signed.
            </Empty>
          )
        ) : null}
        {subscriptions.length > 0 ? (
          <TableFrame label="Subscriptions">
            <thead>
              <tr>
                <th scope="col">Target URL</th>
                <th scope="col">Event types</th>
                <th scope="col">Status</th>
                <th scope="col">Latest delivery</th>
              </tr>
            </thead>
            <tbody>
              {subscriptions.map((s) => (
                <tr key={s.id}>
                  <td class="url">
                    <a href={`/ui/subscriptions/${s.id}`}>{s.target_url}</a>
                  </td>
                  <td>{s.event_types.join(', ')}</td>
                  <td>
                    <Status value={s.status} />
                    {s.circuit.state === 'closed' ? null : (
                      <>
                        {' '}
                        <CircuitBadge circuit={s.circuit} />
                      </>
                    )}
                  </td>
                  <td>
                    <LatestDelivery delivery={s.last_delivery} />
                  </td>
                </tr>
              ))}
            </tbody>
          </TableFrame>
        ) : null}
        <LoadMore cursor={cursor} onMore={more} />
      </section>
    </>
  );
}

type LastDelivery = SubscriptionPage['subscriptions'][number]['last_delivery'];

export function LatestDelivery({ delivery }: { delivery: LastDelivery }) {
  if (!delivery) return <span class="muted">none yet</span>;
  const attempt = delivery.last_attempt;
  return (
    <a href={`/ui/deliveries/${delivery.id}`} class="latest">
      <Status value={delivery.status} />{' '}
      {attempt ? (
        <span>
          {attempt.status_code !== null ? `HTTP ${attempt.status_code}` : (attempt.error ?? 'no answer')},{' '}
          <Time iso={attempt.started_at} />
        </span>
      ) : (
        <Time iso={delivery.created_at} />
      )}
    </a>
  );
}

function CreateSubscription({ onCreated }: { onCreated: (s: CreatedSubscription) => void }) {
  const [targetUrl, setTargetUrl] = useState('');
  const [eventType, setEventType] = useState<string>(EVENT_TYPES[1] as string);
  const [secretToken, setSecretToken] = useState('');
  const [rateLimit, setRateLimit] = useState('');
  const [ordering, setOrdering] = useState<'none' | 'document'>('none');
  const [error, setError] = useState<Error | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  return (
    <section aria-labelledby="create">
      <h2 id="create">New subscription</h2>
      <form
        class="grid-form"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            const types =
              eventType === ALL_TYPES
                ? { event_types: EVENT_TYPES }
                : eventType === ALL_OPERATIONAL
                  ? { event_types: OPERATIONAL_EVENT_TYPES }
                  : { event_type: eventType as EventType };
            const answer = await queries.createSubscription({
              target_url: targetUrl.trim(),
              ...types,
              ...(secretToken ? { secret_token: secretToken } : {}),
              // The API checks the number (1 to 10,000) and names the field when it is wrong.
              ...(rateLimit.trim() ? { rate_limit_per_second: Number(rateLimit.trim()) } : {}),
              ordering,
            });
            const made = answer.subscriptions[0];
            if (made) onCreated(made);
            setTargetUrl('');
            setSecretToken('');
            setRateLimit('');
            setOrdering('none');
            setError(undefined);
          } catch (err) {
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="field">
          <label for="target-url">Target URL</label>
          <input
            id="target-url"
            type="url"
            required
            placeholder="https://example.com/webhooks/countersign"
            value={targetUrl}
            onInput={(e) => setTargetUrl(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="event-type">Event type</label>
          <select id="event-type" value={eventType} onChange={(e) => setEventType(e.currentTarget.value)}>
            <optgroup label="Document events">
              {EVENT_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
              <option value={ALL_TYPES}>all four</option>
            </optgroup>
            <optgroup label="Operational events">
              {OPERATIONAL_EVENT_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
              <option value={ALL_OPERATIONAL}>both</option>
            </optgroup>
          </select>
        </div>
        <div class="field">
          <label for="rate-limit">Rate limit</label>
          <input
            id="rate-limit"
            type="number"
            min={1}
            max={10000}
            step={1}
            inputMode="numeric"
            aria-describedby="rate-limit-hint"
            value={rateLimit}
            onInput={(e) => setRateLimit(e.currentTarget.value)}
          />
          <span class="hint" id="rate-limit-hint">
            Optional. At most this many deliveries a second (1 to 10,000); the rest wait their turn.
          </span>
        </div>
        <div class="field">
          <label for="ordering">Ordering</label>
          <select
            id="ordering"
            aria-describedby="ordering-hint"
            value={ordering}
            onChange={(e) => setOrdering(e.currentTarget.value as 'none' | 'document')}
          >
            <option value="none">none</option>
            <option value="document">by document</option>
          </select>
          <span class="hint" id="ordering-hint">
            By document: one document’s events arrive one at a time, in the order they were published.
          </span>
        </div>
        <div class="field">
          <label for="secret-token">Secret token</label>
          <input
            id="secret-token"
            type="password"
            autoComplete="off"
            aria-describedby="secret-token-hint"
            value={secretToken}
            onInput={(e) => setSecretToken(e.currentTarget.value)}
          />
          <span class="hint" id="secret-token-hint">
            Optional. Sent in every payload as <code>secret_token</code>, for your receiver to compare.
          </span>
        </div>
        <ErrorNotice error={error} />
        <div>
          <button type="submit" disabled={busy}>
            Create subscription
          </button>
        </div>
      </form>
    </section>
  );
}
