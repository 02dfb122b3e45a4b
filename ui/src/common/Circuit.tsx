// An endpoint's circuit breaker, as a subscription or the account callback shows it: its state,
// why it opened and when it probes next, and a button to probe now while it is open.
import type { CircuitView } from '../api/queries';
import { Status, Time } from './bits';

const STATE_LABEL: Record<string, string> = { closed: 'closed', open: 'open', half_open: 'probing' };

/** The state as a badge: `circuit-open`, `circuit-half_open` or `circuit-closed`. */
export function CircuitBadge({ circuit }: { circuit: CircuitView }) {
  return <Status value={`circuit-${circuit.state}`} label={`circuit ${STATE_LABEL[circuit.state] ?? circuit.state}`} />;
}

/** The facts of a circuit, for a `dl.facts`: a dt and dd pair, with the probe button when open. */
export function CircuitFacts({ circuit, onProbe }: { circuit: CircuitView; onProbe?: () => void }) {
  return (
    <>
      <dt>Circuit breaker</dt>
      <dd data-testid="circuit">
        <CircuitBadge circuit={circuit} />
        {circuit.state === 'closed' ? (
          <span class="muted"> — deliveries go as usual</span>
        ) : (
          <>
            <span>
              {' '}
              — {circuit.consecutive_failures} fault{circuit.consecutive_failures === 1 ? '' : 's'} in a row, the last{' '}
              <code>{circuit.reason ?? 'unknown'}</code>; deliveries are postponed, their attempts untouched.{' '}
              {circuit.state === 'open' ? 'Next probe ' : 'A probe is being sent; given up '}
              <Time iso={circuit.next_probe_at} />.
            </span>
            {circuit.state === 'open' && onProbe ? (
              <>
                {' '}
                <button type="button" class="secondary" onClick={onProbe}>
                  Probe now
                </button>
              </>
            ) : null}
          </>
        )}
      </dd>
    </>
  );
}
