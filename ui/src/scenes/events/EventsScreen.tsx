// Events: what was published, newest first, filtered by type and document; test events only when
// asked for. The filters live in the URL.

import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import {
  EVENT_TYPES,
  type EventPage,
  type EventQuery,
  type EventType,
  OPERATIONAL_EVENT_TYPES,
  queries,
} from '../../api/queries';
import { Empty, ErrorNotice, Loading, LoadMore, TableFrame, Time } from '../../common/bits';
import { usePages } from '../../common/use-resource';

export function EventsScreen() {
  const { query, route } = useLocation();
  const applied: EventQuery = {
    limit: 25,
    ...(query.event_type ? { event_type: query.event_type as EventType } : {}),
    ...(query.document_id ? { document_id: query.document_id } : {}),
    ...(query.include_tests === 'true' ? { include_tests: true } : {}),
  };
  const key = JSON.stringify(applied);
  const { first, pages, cursor, moreError, more } = usePages<EventPage>(
    (at) => queries.events(at === undefined ? applied : { ...applied, cursor: at }),
    [key],
  );
  const events = pages.flatMap((p) => p.events);
  const filtered = Object.keys(applied).length > 1;

  return (
    <>
      <h1>Events</h1>
      <EventFilters
        key={key}
        applied={applied}
        onApply={(next) => {
          const params = new URLSearchParams();
          if (next.event_type) params.set('event_type', next.event_type);
          if (next.document_id) params.set('document_id', next.document_id);
          if (next.include_tests) params.set('include_tests', 'true');
          const search = params.toString();
          route(search ? `/ui/events?${search}` : '/ui/events');
        }}
      />
      <ErrorNotice error={first.error ?? moreError} />
      {first.loading && pages.length === 0 ? <Loading /> : null}
      {!first.loading && events.length === 0 && !first.error ? (
        filtered ? (
          <Empty title="No events match these filters." />
        ) : (
          <Empty title="No events yet.">
            Events appear here when your platform publishes them with <code>POST /v1/events</code>. To try a
            subscription without one, open it and use “Send test event”.
          </Empty>
        )
      ) : null}
      {events.length > 0 ? (
        <TableFrame label="Events">
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Document</th>
              <th scope="col">Deliveries</th>
              <th scope="col">Published</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e.id}>
                <td>
                  <a href={`/ui/events/${e.id}`}>{e.event}</a>
                  {e.test ? <span class="tag">test</span> : null}
                </td>
                <td>{String((e.data as Record<string, unknown>).document_id ?? '—')}</td>
                <td>{e.deliveries}</td>
                <td>
                  <Time iso={e.created_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </TableFrame>
      ) : null}
      <LoadMore cursor={cursor} onMore={more} />
    </>
  );
}

function EventFilters({ applied, onApply }: { applied: EventQuery; onApply: (q: EventQuery) => void }) {
  const [type, setType] = useState(applied.event_type ?? '');
  const [documentId, setDocumentId] = useState(applied.document_id ?? '');
  const [tests, setTests] = useState(applied.include_tests === true);
  return (
    <form
      class="filters-form"
      aria-label="Filter events"
      onSubmit={(e) => {
        e.preventDefault();
        onApply({
          ...(type ? { event_type: type as EventType } : {}),
          ...(documentId.trim() ? { document_id: documentId.trim() } : {}),
          ...(tests ? { include_tests: true } : {}),
        });
      }}
    >
      <div class="field">
        <label for="e-type">Event type</label>
        <select id="e-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
          <option value="">any</option>
          {[...EVENT_TYPES, ...OPERATIONAL_EVENT_TYPES].map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="e-document">Document id</label>
        <input id="e-document" value={documentId} onInput={(e) => setDocumentId(e.currentTarget.value)} />
      </div>
      <div class="field field-check">
        <input id="e-tests" type="checkbox" checked={tests} onChange={(e) => setTests(e.currentTarget.checked)} />
        <label for="e-tests">Include test events</label>
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
