// One subscription: its settings and its endpoint's circuit breaker, the actions on it (pause and
// resume, probe an open circuit now, a new target URL, a new signing secret shown once, a test
// event, replaying failed deliveries, delete), and its latest deliveries.

import { useRef, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import { type DocumentEventType, isDocumentEvent, queries, type Subscription } from '../../api/queries';
import { Empty, ErrorNotice, isoFromLocal, Loading, localFromDate, SecretOnce, Status, Time } from '../../common/bits';
import { CircuitFacts } from '../../common/Circuit';
import { useResource } from '../../common/use-resource';
import { DeliveryTable } from '../deliveries/DeliveryTable';

export function SubscriptionScreen() {
  const { params } = useRoute();
  const id = params.id as string;
  const sub = useResource(() => queries.subscription(id), [id]);
  if (sub.error instanceof ApiError && sub.error.status === 404) {
    return (
      <>
        <h1>Subscription not found</h1>
        <Empty title={`There is no subscription ${id} in this account.`}>
          See <a href="/ui/subscriptions">your subscriptions</a>.
        </Empty>
      </>
    );
  }
  return (
    <>
      <p class="crumbs">
        <a href="/ui/subscriptions">Subscriptions</a> /
      </p>
      <h1>Subscription</h1>
      <ErrorNotice error={sub.error} />
      {sub.data ? <Details sub={sub.data} onChanged={sub.reload} /> : sub.loading ? <Loading /> : null}
    </>
  );
}

function Details({ sub, onChanged }: { sub: Subscription; onChanged: () => void }) {
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [deliveriesVersion, setDeliveriesVersion] = useState(0);
  const { route } = useLocation();

  const act = async (work: () => Promise<string | undefined>) => {
    setError(undefined);
    setNotice(undefined);
    try {
      const said = await work();
      if (said) setNotice(said);
      onChanged();
      setDeliveriesVersion((v) => v + 1);
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <>
      <dl class="facts">
        <dt>Target URL</dt>
        <dd class="url">{sub.target_url}</dd>
        <dt>Event types</dt>
        <dd>{sub.event_types.join(', ')}</dd>
        <dt>Status</dt>
        <dd>
          <Status value={sub.status} />
          {sub.disabled_reason ? <span> — {sub.disabled_reason}</span> : null}
        </dd>
        <dt>Secret token</dt>
        <dd>{sub.has_secret_token ? 'set (never shown)' : 'none'}</dd>
        <dt>Rate limit</dt>
        <dd>{sub.rate_limit_per_second === null ? 'none' : `${sub.rate_limit_per_second} a second`}</dd>
        <dt>Ordering</dt>
        <dd>{sub.ordering === 'document' ? 'by document, in publish order' : 'none'}</dd>
        <CircuitFacts
          circuit={sub.circuit}
          onProbe={() =>
            act(async () => {
              const { probing } = await queries.probeCircuit(sub.id);
              return probing
                ? 'Probing now: the oldest postponed delivery goes at once. If it is answered, the rest follow.'
                : 'No delivery is waiting: the next one published goes at once as the probe.';
            })
          }
        />
        <dt>Created</dt>
        <dd>
          <Time iso={sub.created_at} />
        </dd>
        <dt>Id</dt>
        <dd>
          <code>{sub.id}</code>
        </dd>
      </dl>

      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      <ErrorNotice error={error} />
      {secret ? <SecretOnce title="New signing secret:" secret={secret} onDone={() => setSecret(undefined)} /> : null}

      <section aria-labelledby="actions">
        <h2 id="actions">Actions</h2>
        <div class="actions">
          {sub.status === 'active' ? (
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await queries.updateSubscription(sub.id, { status: 'paused' });
                  return 'Paused: deliveries wait until you resume.';
                })
              }
            >
              Pause
            </button>
          ) : (
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await queries.updateSubscription(sub.id, { status: 'active' });
                  return 'Resumed: waiting deliveries are on their way.';
                })
              }
            >
              Resume
            </button>
          )}
          <button
            type="button"
            onClick={() =>
              act(async () => {
                const rotated = (await queries.rotateSecret(sub.id)).subscriptions[0];
                if (!rotated) throw new Error('the API answered without the new secret');
                setSecret(rotated.signing_secret);
                const until = rotated.previous_secret_expires_at;
                return until
                  ? `The previous secret keeps signing beside the new one until ${new Date(until).toLocaleString()}.`
                  : 'The previous secret no longer signs.';
              })
            }
          >
            Rotate secret
          </button>
          <TestEvent sub={sub} act={act} />
          <DeleteSubscription sub={sub} onDeleted={() => route('/ui/subscriptions')} onError={(err) => setError(err)} />
        </div>
        <h3>Change the target URL</h3>
        <EditTargetUrl sub={sub} act={act} />
        <h3>Delivery controls</h3>
        <EditControls sub={sub} act={act} />
        <h3>Replay failed deliveries</h3>
        <Replay sub={sub} act={act} />
      </section>

      <section aria-labelledby="recent">
        <h2 id="recent">Latest deliveries</h2>
        <DeliveryTable
          key={deliveriesVersion}
          query={{ subscription_id: sub.id, limit: 10 }}
          emptyText="No deliveries yet. Send a test event, or publish an event of this type."
        />
        <p>
          <a href={`/ui/deliveries?subscription_id=${sub.id}`}>All deliveries of this subscription</a>
        </p>
      </section>
    </>
  );
}

type Act = (work: () => Promise<string | undefined>) => Promise<void>;

function EditControls({ sub, act }: { sub: Subscription; act: Act }) {
  const [rateLimit, setRateLimit] = useState(
    sub.rate_limit_per_second === null ? '' : String(sub.rate_limit_per_second),
  );
  const [ordering, setOrdering] = useState(sub.ordering);
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        act(async () => {
          const limit = rateLimit.trim() === '' ? null : Number(rateLimit.trim());
          await queries.updateSubscription(sub.id, { rate_limit_per_second: limit, ordering });
          return `Saved: ${limit === null ? 'no rate limit' : `at most ${limit} a second`}, ${
            ordering === 'document' ? 'ordered by document' : 'no ordering'
          }.`;
        });
      }}
    >
      <label for="edit-rate-limit">Rate limit (a second, empty for none)</label>
      <input
        id="edit-rate-limit"
        type="number"
        min={1}
        max={10000}
        step={1}
        inputMode="numeric"
        value={rateLimit}
        onInput={(e) => setRateLimit(e.currentTarget.value)}
      />
      <label for="edit-ordering">Ordering</label>
      <select
        id="edit-ordering"
        value={ordering}
        onChange={(e) => setOrdering(e.currentTarget.value as Subscription['ordering'])}
      >
        <option value="none">none</option>
        <option value="document">by document</option>
      </select>
      <button type="submit">Save controls</button>
    </form>
  );
}

function TestEvent({ sub, act }: { sub: Subscription; act: Act }) {
  // A test event is a document event: operational events are made by countersign alone.
  const types = sub.event_types.filter(isDocumentEvent) as DocumentEventType[];
  const [type, setType] = useState<DocumentEventType>(types[0] as DocumentEventType);
  if (types.length === 0) return null;
  return (
    <span class="inline-group">
      {types.length > 1 ? (
        <>
          <label for="test-type" class="visually-hidden">
            Test event type
          </label>
          <select id="test-type" value={type} onChange={(e) => setType(e.currentTarget.value as DocumentEventType)}>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </>
      ) : null}
      <button
        type="button"
        onClick={() =>
          act(async () => {
            const sent = await queries.sendTest(sub.id, type);
            return `A test ${sent.event_type} event was queued (${sent.event_id}). Its delivery is listed below.`;
          })
        }
      >
        Send test event
      </button>
    </span>
  );
}

function DeleteSubscription({
  sub,
  onDeleted,
  onError,
}: {
  sub: Subscription;
  onDeleted: () => void;
  onError: (err: Error) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  return (
    <>
      <button type="button" class="danger" onClick={() => dialog.current?.showModal()}>
        Delete
      </button>
      <dialog ref={dialog} aria-labelledby="delete-title">
        <h2 id="delete-title">Delete this subscription?</h2>
        <p>
          <span class="url">{sub.target_url}</span> will get no more webhooks, and deliveries not yet made are
          cancelled. This cannot be undone.
        </p>
        <form
          method="dialog"
          class="actions"
          onSubmit={async (e) => {
            const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null;
            if (submitter?.value !== 'delete') return;
            e.preventDefault();
            try {
              await queries.deleteSubscription(sub.id);
              dialog.current?.close();
              onDeleted();
            } catch (err) {
              dialog.current?.close();
              onError(err as Error);
            }
          }}
        >
          <button type="submit" value="cancel" class="secondary">
            Cancel
          </button>
          <button type="submit" value="delete" class="danger">
            Delete
          </button>
        </form>
      </dialog>
    </>
  );
}

function EditTargetUrl({ sub, act }: { sub: Subscription; act: Act }) {
  const [url, setUrl] = useState(sub.target_url);
  return (
    <form
      class="inline-form"
      aria-label="Change the target URL"
      onSubmit={(e) => {
        e.preventDefault();
        void act(async () => {
          await queries.updateSubscription(sub.id, { target_url: url.trim() });
          return 'Target URL saved. New attempts go to the new address.';
        });
      }}
    >
      <div class="field">
        <label for="edit-target-url">Target URL</label>
        <input id="edit-target-url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
      </div>
      <button type="submit" class="secondary">
        Save target URL
      </button>
    </form>
  );
}

function Replay({ sub, act }: { sub: Subscription; act: Act }) {
  const now = new Date();
  const [since, setSince] = useState(localFromDate(new Date(now.getTime() - 24 * 3600_000)));
  const [until, setUntil] = useState(localFromDate(new Date(now.getTime() + 60_000)));
  return (
    <form
      class="inline-form"
      aria-label="Replay failed deliveries"
      onSubmit={(e) => {
        e.preventDefault();
        void act(async () => {
          const from = isoFromLocal(since);
          const to = isoFromLocal(until);
          if (!from || !to) throw new Error('Give both times of the window.');
          const replayed = await queries.replay(sub.id, from, to);
          return replayed.requeued === 0
            ? 'No failed deliveries in that window.'
            : `${replayed.requeued} failed deliver${replayed.requeued === 1 ? 'y was' : 'ies were'} queued again.`;
        });
      }}
    >
      <div class="field">
        <label for="replay-since">Failed deliveries created from</label>
        <input id="replay-since" type="datetime-local" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for="replay-until">until</label>
        <input id="replay-until" type="datetime-local" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
      </div>
      <button type="submit" class="secondary">
        Replay
      </button>
    </form>
  );
}
