// A page of the delivery log, with "Load more"; used by the Deliveries screen, a subscription
// and an event.
import { useState } from 'preact/hooks';
import { type DeliveryPage, type DeliveryQuery, queries } from '../../api/queries';
import { Empty, ErrorNotice, Loading, LoadMore, Status, TableFrame, Time } from '../../common/bits';
import { useInterval, useResource } from '../../common/use-resource';

/** The first page is read again this often, so new deliveries and their outcomes show up live. */
const LIVE_MS = 2_000;

export function DeliveryTable({ query, emptyText }: { query: DeliveryQuery; emptyText: string }) {
  const [pages, setPages] = useState<DeliveryPage[]>([]);
  const [moreError, setMoreError] = useState<Error | undefined>(undefined);
  const key = JSON.stringify(query);
  const first = useResource(async () => {
    const page = await queries.deliveries(query);
    setPages([page]);
    return page;
  }, [key]);
  const deliveries = pages.flatMap((p) => p.deliveries);
  const last = pages[pages.length - 1];
  // Only while one page is shown: reading it again would drop the pages loaded after it.
  useInterval(() => {
    if (pages.length === 1 && !first.loading) first.reload();
  }, LIVE_MS);
  if (first.loading && pages.length === 0) return <Loading />;
  return (
    <>
      <ErrorNotice error={first.error ?? moreError} />
      {deliveries.length === 0 && !first.error ? <Empty title={emptyText} /> : null}
      {deliveries.length > 0 ? (
        <TableFrame label="Deliveries">
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Target</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last attempt</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {deliveries.map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={`/ui/deliveries/${d.id}`} aria-label={`Delivery ${d.id}, ${d.status}`}>
                    <Status value={d.status} />
                  </a>
                </td>
                <td class="url">
                  {d.target === 'listen'
                    ? 'countersign listen'
                    : (d.target_url ?? (d.target === 'callback' ? 'account callback' : '—'))}
                </td>
                <td>{d.attempt_count}</td>
                <td>
                  {d.last_attempt ? (
                    <span>
                      {d.last_attempt.status_code !== null
                        ? `HTTP ${d.last_attempt.status_code}`
                        : (d.last_attempt.error ?? 'no answer')}
                    </span>
                  ) : (
                    <span class="muted">none yet</span>
                  )}
                </td>
                <td>
                  <Time iso={d.created_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </TableFrame>
      ) : null}
      <LoadMore
        cursor={last?.next_cursor}
        onMore={async (cursor) => {
          try {
            const page = await queries.deliveries({ ...query, cursor });
            setPages((p) => [...p, page]);
            setMoreError(undefined);
          } catch (err) {
            setMoreError(err as Error);
          }
        }}
      />
    </>
  );
}
