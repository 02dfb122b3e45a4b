// A page of the delivery log, with "Load more"; used by the Deliveries screen, a subscription
// and an event.
import { type DeliveryPage, type DeliveryQuery, queries } from '../../api/queries';
import { Empty, ErrorNotice, Loading, LoadMore, Status, TableFrame, Time } from '../../common/bits';
import { useInterval, usePages } from '../../common/use-resource';

/** The first page is read again this often, so new deliveries and their outcomes show up live. */
const LIVE_MS = 2_000;

export function DeliveryTable({ query, emptyText }: { query: DeliveryQuery; emptyText: string }) {
  const key = JSON.stringify(query);
  const { first, pages, cursor, moreError, more } = usePages<DeliveryPage>(
    (at) => queries.deliveries(at === undefined ? query : { ...query, cursor: at }),
    [key],
  );
  const deliveries = pages.flatMap((p) => p.deliveries);
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
      <LoadMore cursor={cursor} onMore={more} />
    </>
  );
}
