// Overview: deliveries by status over the last 24 hours, the subscriptions that need attention,
// and a live chart of attempts per minute that polls GET /v1/stats/attempts.
import { useState } from 'preact/hooks';
import { type AttemptsPerMinute, DELIVERY_STATUSES, queries } from '../../api/queries';
import { AttemptsChart } from '../../common/AttemptsChart';
import { Empty, ErrorNotice, Loading, Status, TableFrame, Time } from '../../common/bits';
import { CircuitBadge } from '../../common/Circuit';
import { useInterval, useResource } from '../../common/use-resource';

const CHART_MINUTES = 60;
const POLL_MS = 5_000;

export function OverviewScreen() {
  const overview = useResource(() => queries.overview(), []);
  const [figures, setFigures] = useState<AttemptsPerMinute | undefined>(undefined);
  const [chartError, setChartError] = useState<Error | undefined>(undefined);
  const poll = () =>
    queries.attemptsPerMinute(CHART_MINUTES).then(
      (f) => {
        setFigures(f);
        setChartError(undefined);
      },
      (err: unknown) => setChartError(err instanceof Error ? err : new Error(String(err))),
    );
  const first = useResource(poll, []);
  useInterval(() => {
    void poll();
    overview.reload();
  }, POLL_MS);

  const data = overview.data;
  const total = data ? DELIVERY_STATUSES.reduce((n, s) => n + data.deliveries[s], 0) : 0;
  return (
    <>
      <h1>Overview</h1>
      <section aria-labelledby="by-status">
        <h2 id="by-status">Deliveries in the last 24 hours</h2>
        <ErrorNotice error={overview.error} />
        {!data && overview.loading ? <Loading /> : null}
        {data ? (
          total === 0 ? (
            <Empty title="No deliveries in the last 24 hours.">
              Deliveries appear here once events are published to a <a href="/ui/subscriptions">subscription</a> or the{' '}
              <a href="/ui/callback">account callback</a>.
            </Empty>
          ) : (
            <>
              {data.complete ? null : (
                <p class="hint">
                  There were more deliveries in the last 24 hours than the overview counts: these figures are of the
                  newest ones.
                </p>
              )}
              <ul class="counts">
                {DELIVERY_STATUSES.map((s) => (
                  <li key={s}>
                    <a href={`/ui/deliveries?status=${s}`} class="count">
                      <span class="count-figure" data-testid={`count-${s}`}>
                        {data.deliveries[s]}
                      </span>
                      <Status value={s} />
                    </a>
                  </li>
                ))}
              </ul>
            </>
          )
        ) : null}
      </section>

      <section aria-labelledby="live">
        <h2 id="live">Attempts per minute, last hour</h2>
        <p class="hint">Updates every {POLL_MS / 1000} seconds. A retried delivery counts each failed attempt.</p>
        <ErrorNotice error={chartError ?? first.error} />
        {figures ? <AttemptsChart figures={figures} /> : <Loading />}
      </section>

      <section aria-labelledby="attention">
        <h2 id="attention">Subscriptions that need attention</h2>
        {data ? (
          data.attention.total === 0 ? (
            <Empty title="Every subscription is healthy.">None is failing or disabled.</Empty>
          ) : (
            <>
              <p>
                {data.attention.total} subscription{data.attention.total === 1 ? ' is' : 's are'} failing or disabled
                {data.attention.total > data.attention.subscriptions.length
                  ? ` (the first ${data.attention.subscriptions.length} are shown)`
                  : ''}
                .
              </p>
              <TableFrame label="Subscriptions that need attention">
                <thead>
                  <tr>
                    <th scope="col">Target URL</th>
                    <th scope="col">Status</th>
                    <th scope="col">Failing since</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {data.attention.subscriptions.map((s) => (
                    <tr key={s.id}>
                      <td class="url">
                        <a href={`/ui/subscriptions/${s.id}`}>{s.target_url}</a>
                      </td>
                      <td>
                        <Status value={s.status === 'active' ? 'failing' : s.status} />
                        {s.circuit.state === 'closed' ? null : (
                          <>
                            {' '}
                            <CircuitBadge circuit={s.circuit} />
                          </>
                        )}
                      </td>
                      <td>
                        <Time iso={s.failing_since} />
                      </td>
                      <td>{s.disabled_reason ?? s.circuit.reason ?? <span class="muted">—</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </TableFrame>
            </>
          )
        ) : null}
      </section>
    </>
  );
}
