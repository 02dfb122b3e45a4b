// One delivery: every attempt (time, duration, status code, error, the answer's headers and
// excerpt), the exact request last sent (headers and body), and Redeliver.

import { useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import { type Attempt, type Delivery, queries } from '../../api/queries';
import { Empty, ErrorNotice, JsonView, Loading, Status, TableFrame, Time } from '../../common/bits';
import { useInterval, useResource } from '../../common/use-resource';

export function DeliveryScreen() {
  const { params } = useRoute();
  const id = params.id as string;
  const delivery = useResource(() => queries.delivery(id), [id]);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  // A delivery on its way is read again until it lands, so its attempts appear without a reload.
  const moving = delivery.data?.status === 'pending' || delivery.data?.status === 'sending';
  useInterval(() => {
    if (moving) delivery.reload();
  }, 1_500);
  if (delivery.error instanceof ApiError && delivery.error.status === 404) {
    return (
      <>
        <h1>Delivery not found</h1>
        <Empty title={`There is no delivery ${id} in this account.`}>
          See <a href="/ui/deliveries">the delivery log</a>.
        </Empty>
      </>
    );
  }
  const d = delivery.data;
  return (
    <>
      <p class="crumbs">
        <a href="/ui/deliveries">Deliveries</a> /
      </p>
      <h1>Delivery</h1>
      <ErrorNotice error={delivery.error ?? error} />
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      {!d && delivery.loading ? <Loading /> : null}
      {d ? (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd data-testid="delivery-status">
              <Status value={d.status} />
            </dd>
            <dt>Target</dt>
            <dd class="url">
              {d.target === 'callback' ? 'account callback: ' : null}
              {d.target === 'listen' ? (
                `countersign listen session ${d.subscription_id ?? ''}`
              ) : d.subscription_id ? (
                <a href={`/ui/subscriptions/${d.subscription_id}`}>{d.target_url ?? d.subscription_id}</a>
              ) : (
                (d.target_url ?? '—')
              )}
            </dd>
            <dt>Event</dt>
            <dd>
              <a href={`/ui/events/${d.event_id}`}>
                <code>{d.event_id}</code>
              </a>
            </dd>
            <dt>Attempts</dt>
            <dd>{d.attempt_count}</dd>
            <dt>Next attempt</dt>
            <dd>
              <Time iso={d.next_attempt_at} />
            </dd>
            <dt>Delivered</dt>
            <dd>
              <Time iso={d.delivered_at} />
            </dd>
            <dt>Created</dt>
            <dd>
              <Time iso={d.created_at} />
            </dd>
          </dl>
          <div class="actions">
            <button
              type="button"
              onClick={async () => {
                setError(undefined);
                setNotice(undefined);
                try {
                  await queries.redeliver(d.id);
                  setNotice('Queued for one more attempt now.');
                  delivery.reload();
                } catch (err) {
                  setError(err as Error);
                }
              }}
            >
              Redeliver
            </button>
            <button type="button" class="secondary" onClick={delivery.reload}>
              Refresh
            </button>
          </div>
          <Attempts delivery={d} />
          <RequestSent delivery={d} />
        </>
      ) : null}
    </>
  );
}

function Attempts({ delivery }: { delivery: Delivery }) {
  const attempts = delivery.attempts ?? [];
  return (
    <section aria-labelledby="attempts">
      <h2 id="attempts">Attempts</h2>
      {attempts.length === 0 ? (
        <Empty title="No attempt yet.">The first attempt is made as soon as a dispatcher picks this delivery up.</Empty>
      ) : (
        <TableFrame label="Attempts">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time</th>
              <th scope="col">Duration</th>
              <th scope="col">Status code</th>
              <th scope="col">Error</th>
              <th scope="col">Answer</th>
            </tr>
          </thead>
          <tbody>
            {[...attempts].reverse().map((a) => (
              <AttemptRow key={a.number} attempt={a} />
            ))}
          </tbody>
        </TableFrame>
      )}
    </section>
  );
}

function AttemptRow({ attempt }: { attempt: Attempt }) {
  const ok = attempt.status_code !== null && attempt.status_code >= 200 && attempt.status_code < 300;
  return (
    <tr data-testid="attempt">
      <td>
        {attempt.number}
        {attempt.trigger === 'manual' ? <span class="tag">manual</span> : null}
      </td>
      <td>
        <Time iso={attempt.started_at} />
      </td>
      <td>{attempt.duration_ms} ms</td>
      <td>
        {attempt.status_code !== null ? (
          <span class={`status status-${ok ? 'delivered' : 'failed'}`}>{attempt.status_code}</span>
        ) : (
          <span class="muted">none</span>
        )}
      </td>
      <td>{attempt.error ?? <span class="muted">—</span>}</td>
      <td>
        {attempt.response_excerpt || attempt.response_headers ? (
          <details>
            <summary>{attempt.response_excerpt ? truncate(attempt.response_excerpt, 60) : 'headers'}</summary>
            {attempt.response_headers ? <HeaderList headers={attempt.response_headers} label="Answer headers" /> : null}
            {attempt.response_excerpt ? <JsonView value={attempt.response_excerpt} label="Answer excerpt" /> : null}
          </details>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
    </tr>
  );
}

function RequestSent({ delivery }: { delivery: Delivery }) {
  const request = delivery.request;
  return (
    <section aria-labelledby="request">
      <h2 id="request">Request sent</h2>
      {!request ? (
        <Empty title="Nothing sent yet." />
      ) : (
        <>
          <p>
            <code>
              {request.method} {request.url}
            </code>
          </p>
          <HeaderList headers={request.headers} label="Request headers" />
          <h3>Body</h3>
          <JsonView value={prettyJson(request.body)} label="Request body" />
        </>
      )}
    </section>
  );
}

function HeaderList({ headers, label }: { headers: Record<string, string>; label: string }) {
  return (
    <dl class="headers" aria-label={label}>
      {Object.entries(headers).map(([name, value]) => (
        <div key={name}>
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function truncate(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n)}…` : text;
}
