// The circuit breaker of an endpoint (a subscription, or an account's callback). Pure: what an
// attempt says about its endpoint, and how a run of such verdicts moves the circuit.
//
//   closed --N faults in a row--> open --its window passes, a claim takes one delivery--> half_open
//   half_open --the probe answers--> closed        half_open --the probe fails--> open (window doubled)
//   open or half_open --any answer that is not a fault (a manual attempt, a send already in flight)--> closed
//
// While the circuit is open the endpoint's deliveries are postponed without using their attempts;
// one of them stays due at the end of the window and is the probe.

export type CircuitState = 'closed' | 'open' | 'half_open';

/** What one attempt says about its endpoint. `neutral`: nothing was sent (a request that could not be prepared). */
export type CircuitVerdict = 'success' | 'fault' | 'neutral';

export interface CircuitSettings {
  /** Faults in a row that open the circuit; 0 turns the breaker off. */
  failureThreshold: number;
  /** How long the circuit stays open the first time, before its probe. */
  openMs: number;
  /** Each failed probe doubles the window, up to this. */
  maxOpenMs: number;
  /** How long a probe may go unanswered before another one may be sent. */
  probeTimeoutMs: number;
}

export const DEFAULT_CIRCUIT_SETTINGS: Omit<CircuitSettings, 'probeTimeoutMs'> = {
  failureThreshold: 10,
  openMs: 30_000,
  maxOpenMs: 10 * 60_000,
};

/**
 * A fault is what says the endpoint itself cannot take deliveries now: no answer (a timeout, a
 * refused or reset connection, a failed lookup, a TLS error, an address the SSRF guard refuses),
 * a 5xx, or 429 Too Many Requests. Any other answer, a 4xx included, shows a live receiver: its
 * delivery is retried as ever, but it says nothing against the endpoint.
 */
export function circuitVerdict(answer: { statusCode: number } | { error: string } | undefined): CircuitVerdict {
  if (answer === undefined) return 'neutral';
  if ('error' in answer) return 'fault';
  return answer.statusCode >= 500 || answer.statusCode === 429 ? 'fault' : 'success';
}

/** A circuit as stored: the endpoint's key and account are kept beside it by the store. */
export interface Circuit {
  state: CircuitState;
  /** Faults since the last success. */
  failures: number;
  /** Times opened since the last success: the window doubles with each. */
  openings: number;
  /** The last fault, as the delivery log words it. */
  reason: string | null;
  openedAt: number | null;
  /** Open: when the probe may be sent. Half-open: when an unanswered probe is given up. */
  retryAt: number | null;
}

export const CLOSED: Circuit = {
  state: 'closed',
  failures: 0,
  openings: 0,
  reason: null,
  openedAt: null,
  retryAt: null,
};

export interface Verdict {
  verdict: CircuitVerdict;
  /** When the attempt ended: a batch's verdicts are taken in this order. */
  at: number;
  /** For a fault: what happened, as the delivery log words it. */
  reason: string | null;
}

export type CircuitTransition = 'opened' | 'reopened' | 'closed' | 'none';

/** How long the circuit stays open after its `openings`-th opening (1-based). */
export function openWindow(openings: number, settings: CircuitSettings): number {
  const doubled = settings.openMs * 2 ** Math.min(Math.max(0, openings - 1), 30);
  return Math.min(doubled, Math.max(settings.openMs, settings.maxOpenMs));
}

/**
 * The circuit after a batch of verdicts, and how it moved. A success closes it whatever its state
 * (the receiver answered), and resets the count; faults after the batch's last success count on.
 * A closed circuit opens at the threshold; a half-open one reopens at its probe's fault, for a
 * window twice as long. An open circuit's faults (sends that were in flight when it opened) only
 * count.
 */
export function nextCircuit(
  current: Circuit,
  verdicts: readonly Verdict[],
  now: number,
  settings: CircuitSettings,
): { circuit: Circuit; transition: CircuitTransition } {
  const ordered = [...verdicts].filter((v) => v.verdict !== 'neutral').sort((a, b) => a.at - b.at);
  if (ordered.length === 0) return { circuit: current, transition: 'none' };
  let lastSuccess = -1;
  for (let i = ordered.length - 1; i >= 0; i--) {
    if ((ordered[i] as Verdict).verdict === 'success') {
      lastSuccess = i;
      break;
    }
  }
  const faults = ordered.slice(lastSuccess + 1);
  const lastFault = faults[faults.length - 1];
  const reason = lastFault?.reason ?? null;
  let circuit: Circuit;
  let transition: CircuitTransition = 'none';
  if (lastSuccess >= 0) {
    circuit = { ...CLOSED, failures: faults.length, reason };
    if (current.state !== 'closed') transition = 'closed';
  } else {
    circuit = { ...current, failures: current.failures + faults.length, reason: reason ?? current.reason };
  }
  if (settings.failureThreshold <= 0) return { circuit: { ...circuit, state: 'closed' }, transition: 'none' };

  if (circuit.state === 'closed' && circuit.failures >= settings.failureThreshold) {
    const openings = 1;
    circuit = { ...circuit, state: 'open', openings, openedAt: now, retryAt: now + openWindow(openings, settings) };
    // Closed and opened again within one batch is still an opening: the endpoint failed on.
    transition = 'opened';
  } else if (circuit.state === 'half_open' && lastSuccess < 0) {
    const openings = circuit.openings + 1;
    circuit = { ...circuit, state: 'open', openings, retryAt: now + openWindow(openings, settings) };
    transition = 'reopened';
  }
  return { circuit, transition };
}
