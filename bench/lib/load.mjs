// Load generation: the event every scenario sends, a closed loop (N requests from C concurrent
// clients) and an open loop (a fixed rate for a fixed time). Both are bounded in count and time.
import { Pool } from 'undici';

export const EVENT_TYPE = 'document.signed';

/** The event's data. `sent_at_ns` (monotonic clock) lets the receiver compute end-to-end latency. */
export function eventData(i) {
  return {
    document_id: `doc_${i}`,
    signer_email: `signer${i % 1000}@example.test`,
    audit_url: `https://sign.example.test/audit/doc_${i}`,
    sent_at_ns: process.hrtime.bigint().toString(),
  };
}

/** The body of POST /v1/events. */
export function publishBody(i) {
  return JSON.stringify({ event: EVENT_TYPE, data: eventData(i) });
}

/** The body of POST /v1/events/batch: events first … first + size - 1. */
export function batchBody(first, size) {
  const events = [];
  for (let k = 0; k < size; k++) events.push({ event: EVENT_TYPE, data: eventData(first + k) });
  return JSON.stringify({ events });
}

/** The body a receiver gets, in countersign's payload shape (for the ceiling and BullMQ). */
export function deliveryPayload(id, type, occurredAt, data) {
  return `{"event":${JSON.stringify(type)},"timestamp":"${new Date(occurredAt).toISOString().slice(0, 19)}Z","data":${JSON.stringify(data)},"id":"${id}"}`;
}

/**
 * Calls `send(i)` for i in [0, count) from `concurrency` concurrent loops, starting no new call
 * after `forMs` (a time box). Times are monotonic nanoseconds (comparable with the receiver's).
 */
export async function closedLoop({ count, concurrency, forMs, send }) {
  let next = 0;
  let ok = 0;
  let errors = 0;
  let firstError;
  const deadline = Date.now() + forMs;
  const startNs = process.hrtime.bigint();
  const loops = Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, async () => {
    while (next < count && Date.now() < deadline) {
      const i = next++;
      try {
        await send(i);
        ok++;
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  });
  await Promise.all(loops);
  return { startNs, endNs: process.hrtime.bigint(), attempted: next, ok, errors, firstError };
}

/**
 * Starts `send(i)` at `rate` per second for `seconds` without waiting for answers (an open loop,
 * so a slow server cannot slow the offered load down), then waits for the answers (bounded).
 */
export async function openLoop({ rate, seconds, send, drainTimeoutMs = 30_000 }) {
  const total = Math.round(rate * seconds);
  let started = 0;
  let ok = 0;
  let errors = 0;
  let firstError;
  const ackMs = [];
  const pending = new Set();
  const start = performance.now();
  const startNs = process.hrtime.bigint();
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
      while (started < due) {
        const i = started++;
        const t0 = performance.now();
        const p = send(i).then(
          () => {
            ok++;
            ackMs.push(performance.now() - t0);
          },
          (err) => {
            errors++;
            firstError ??= err instanceof Error ? err.message : String(err);
          },
        );
        pending.add(p);
        p.finally(() => pending.delete(p));
      }
      if (started >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const sentForMs = performance.now() - start;
  await Promise.race([Promise.allSettled([...pending]), new Promise((r) => setTimeout(r, drainTimeoutMs).unref())]);
  return { startNs, total, started, ok, errors, firstError, sentForMs, ackMs };
}

/** A keep-alive client for the countersign API. */
export function apiClient(origin, token, connections) {
  const pool = new Pool(origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  async function call(method, path, body, expected) {
    const res = await pool.request({ method, path, headers, body });
    if (res.statusCode !== expected) {
      const text = await res.body.text();
      throw new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    }
    return res.body;
  }
  return {
    async publish(i) {
      await (await call('POST', '/v1/events', publishBody(i), 202)).dump();
    },
    async publishBatch(first, size) {
      await (await call('POST', '/v1/events/batch', batchBody(first, size), 202)).dump();
    },
    async post(path, value, expected = 200) {
      return (await call('POST', path, JSON.stringify(value), expected)).json();
    },
    async patch(path, value, expected = 200) {
      return (await call('PATCH', path, JSON.stringify(value), expected)).json();
    },
    close: () => pool.close(),
  };
}
