// One event: its payload as formatted JSON, and the deliveries it made.
import { useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import { queries } from '../../api/queries';
import { Empty, ErrorNotice, JsonView, Loading, Time } from '../../common/bits';
import { useResource } from '../../common/use-resource';
import { DeliveryTable } from '../deliveries/DeliveryTable';

export function EventScreen() {
  const { params } = useRoute();
  const id = params.id as string;
  const event = useResource(() => queries.event(id), [id]);
  if (event.error instanceof ApiError && event.error.status === 404) {
    return (
      <>
        <h1>Event not found</h1>
        <Empty title={`There is no event ${id} in this account.`}>
          See <a href="/ui/events">the events</a>.
        </Empty>
      </>
    );
  }
  const e = event.data;
  return (
    <>
      <p class="crumbs">
        <a href="/ui/events">Events</a> /
      </p>
      <h1>Event {e ? <code>{e.event}</code> : null}</h1>
      <ErrorNotice error={event.error} />
      {!e && event.loading ? <Loading /> : null}
      {e ? (
        <>
          <dl class="facts">
            <dt>Id</dt>
            <dd>
              <code>{e.id}</code>
            </dd>
            <dt>Occurred</dt>
            <dd>
              <Time iso={e.timestamp} />
            </dd>
            <dt>Published</dt>
            <dd>
              <Time iso={e.created_at} />
            </dd>
            <dt>Test event</dt>
            <dd>{e.test ? 'yes' : 'no'}</dd>
          </dl>
          <h2>Payload data</h2>
          <JsonView value={e.data} label="Event data" />
          <section aria-labelledby="event-deliveries">
            <h2 id="event-deliveries">Deliveries</h2>
            <DeliveryTable
              query={{ event_id: e.id, limit: 50 }}
              emptyText="This event matched no subscription and no callback, so nothing was sent."
            />
          </section>
        </>
      ) : null}
    </>
  );
}
