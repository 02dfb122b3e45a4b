// Circuit breakers in the database, shared by every process (src/domain/circuit.ts decides how a
// circuit moves; this file stores it and moves the endpoint's deliveries with it).
//
// - Recording attempts (in recordAttempts' transaction) feeds each endpoint's verdicts to its
//   circuit. Healthy endpoints have no row and cost one indexed read per batch that finds nothing.
// - A circuit that opens postpones the endpoint's pending deliveries (status `postponed`: out of
//   the queue, their attempts untouched). When its window ends, the oldest of them becomes due
//   (releaseProbes, run by every dispatcher); the claim that takes it moves the circuit to half-open
//   (compare and set, so of several processes one sends one probe). A circuit that closes makes its
//   postponed deliveries pending again with their own due times, in order.
// - Publishing to an endpoint whose circuit is open inserts the new delivery postponed at once.
import { type Kysely, sql } from 'kysely';
import {
  type Circuit,
  type CircuitSettings,
  type CircuitTransition,
  CLOSED,
  nextCircuit,
  type Verdict,
} from '../../domain/circuit.js';
import type { StoreDialect } from '../dialect.js';
import type { Database, EndpointCircuitsTable } from '../schema.js';
import type { AttemptResult } from '../store.js';
import { chunk } from './chunk.js';
import { CLAIMABLE, endpointKey, ofEndpoint } from './endpoints.js';

export type CircuitRow = EndpointCircuitsTable;

export function circuitOf(row: CircuitRow | undefined): Circuit {
  if (row === undefined) return CLOSED;
  return {
    state: row.state,
    failures: row.failures,
    openings: row.openings,
    reason: row.reason,
    openedAt: row.opened_at === null ? null : Number(row.opened_at),
    retryAt: row.retry_at === null ? null : Number(row.retry_at),
  };
}

/** A circuit that moved, for the operational events and the log. */
export interface CircuitChange {
  endpoint: string;
  accountId: string;
  transition: Exclude<CircuitTransition, 'none'>;
  circuit: Circuit;
}

/** The circuits of these endpoints that are not closed, by endpoint. */
export async function trippedCircuits(db: Kysely<Database>, keys: string[]): Promise<Map<string, CircuitRow>> {
  const found = new Map<string, CircuitRow>();
  for (const part of chunk([...new Set(keys)], 500)) {
    const rows = await db
      .selectFrom('endpoint_circuits')
      .selectAll()
      .where('endpoint', 'in', part)
      .where('state', '<>', 'closed')
      .execute();
    for (const row of rows) found.set(row.endpoint, row);
  }
  return found;
}

/** The circuits of these endpoints, closed ones included, by endpoint (endpoints never failed have none). */
/**
 * The circuits of these endpoints. `lock` (PostgreSQL, in a transaction that writes them back)
 * holds their rows, in endpoint order so that two writers cannot deadlock, until it commits.
 */
export async function circuitsOf(db: Kysely<Database>, keys: string[], lock = false): Promise<Map<string, CircuitRow>> {
  const found = new Map<string, CircuitRow>();
  for (const part of chunk([...new Set(keys)].sort(), 500)) {
    const rows = await db
      .selectFrom('endpoint_circuits')
      .selectAll()
      .where('endpoint', 'in', part)
      .$if(lock, (q) => q.orderBy('endpoint').forUpdate())
      .execute();
    for (const row of rows) found.set(row.endpoint, row);
  }
  return found;
}

/**
 * Feeds a batch's verdicts to the endpoints' circuits and moves their deliveries: postponed when
 * a circuit opens (and a retry of this batch to an endpoint still tripped), pending again when it
 * closes. Runs inside recordAttempts' transaction, after the deliveries' own updates. Returns the
 * circuits that moved and how many deliveries became due.
 */
export async function applyVerdicts(
  trx: Kysely<Database>,
  dialect: Pick<StoreDialect, 'name'>,
  results: AttemptResult[],
  now: number,
  settings: CircuitSettings,
): Promise<{ changes: CircuitChange[]; released: number }> {
  const byEndpoint = new Map<string, { accountId: string; verdicts: Verdict[]; retried: string[] }>();
  for (const r of results) {
    if (r.verdict === undefined || r.verdict === 'neutral') continue;
    const key = endpointKey(r);
    let entry = byEndpoint.get(key);
    if (!entry) {
      entry = { accountId: r.accountId, verdicts: [], retried: [] };
      byEndpoint.set(key, entry);
    }
    entry.verdicts.push({
      verdict: r.verdict,
      at: r.startedAt + r.durationMs,
      reason: r.verdict === 'fault' ? faultReason(r) : null,
    });
    if (r.outcome === 'retry') entry.retried.push(r.deliveryId);
  }
  if (byEndpoint.size === 0) return { changes: [], released: 0 };

  // Held until this batch commits (PostgreSQL): each circuit is read, moved on and written back
  // whole, and a probe asked for meanwhile (probeNow, which holds the row too) must not be lost.
  const stored = await circuitsOf(trx, [...byEndpoint.keys()], dialect.name === 'postgres');
  const changes: CircuitChange[] = [];
  let released = 0;
  for (const [key, { accountId, verdicts, retried }] of byEndpoint) {
    const row = stored.get(key);
    const current = circuitOf(row);
    // An endpoint that never failed and does not fail now keeps no row.
    if (row === undefined && verdicts.every((v) => v.verdict === 'success')) continue;
    const { circuit, transition } = nextCircuit(current, verdicts, now, settings);
    if (!sameCircuit(current, circuit) || row === undefined) await saveCircuit(trx, key, accountId, circuit, now);
    if (transition !== 'none') changes.push({ endpoint: key, accountId, transition, circuit });
    if (circuit.state === 'closed') {
      if (current.state !== 'closed') released += await releasePostponed(trx, key, now);
    } else if (transition === 'opened' || transition === 'reopened' || retried.length > 0) {
      await settleTripped(trx, key, now);
    }
  }
  return { changes, released };
}

function sameCircuit(a: Circuit, b: Circuit): boolean {
  return (
    a.state === b.state &&
    a.failures === b.failures &&
    a.openings === b.openings &&
    a.reason === b.reason &&
    a.openedAt === b.openedAt &&
    a.retryAt === b.retryAt
  );
}

async function saveCircuit(
  trx: Kysely<Database>,
  key: string,
  accountId: string,
  circuit: Circuit,
  now: number,
): Promise<void> {
  const values = {
    state: circuit.state,
    failures: circuit.failures,
    openings: circuit.openings,
    reason: circuit.reason,
    opened_at: circuit.openedAt,
    retry_at: circuit.retryAt,
    updated_at: now,
  };
  await trx
    .insertInto('endpoint_circuits')
    .values({ endpoint: key, account_id: accountId, ...values })
    .onConflict((oc) => oc.column('endpoint').doUpdateSet(values))
    .execute();
}

/** What the delivery log would say of a fault. */
function faultReason(r: AttemptResult): string {
  return r.statusCode === null ? (r.error ?? 'no answer') : `HTTP ${r.statusCode}`;
}

/**
 * A tripped endpoint's pending deliveries postponed (an operator's manual attempt excepted), at
 * most SETTLE_CHUNK of them, earliest due first: a backlog of thousands would hold the writer (and,
 * on SQLite, the event loop) for one long statement. What is left is postponed when a claim takes
 * it (the claim sees the open circuit), a chunk per round. Returns how many moved.
 */
export async function settleTripped(trx: Kysely<Database>, key: string, now: number): Promise<number> {
  const due = await trx
    .selectFrom('deliveries')
    .select('id')
    .where(CLAIMABLE)
    .where(ofEndpoint(key))
    .where('status', '=', 'pending')
    .where('manual', '=', 0)
    .orderBy('next_attempt_at')
    .limit(SETTLE_CHUNK)
    .execute();
  if (due.length === 0) return 0;
  const result = await trx
    .updateTable('deliveries')
    .set({ status: 'postponed', updated_at: now })
    .where(
      'id',
      'in',
      due.map((d) => d.id),
    )
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Pending deliveries of a tripped endpoint postponed per statement. */
export const SETTLE_CHUNK = 500;

/**
 * The probes whose time has come: for each open circuit whose window has ended (or half-open one
 * whose probe went unanswered) with no delivery of its endpoint in the queue, the endpoint's oldest
 * postponed delivery becomes due now; the claim that takes it sends it as the probe. Every
 * dispatcher runs this on its poll; two at once make the same delivery due, once. Returns how many
 * became due, and when the next window ends.
 */
export async function releaseProbes(
  dialect: StoreDialect,
  now: number,
): Promise<{ released: number; nextAt: number | undefined }> {
  const { db } = dialect;
  const circuits = await db
    .selectFrom('endpoint_circuits')
    .select(['endpoint', 'retry_at'])
    .where('state', '<>', 'closed')
    .orderBy('retry_at')
    .limit(PROBES_PER_CALL + 1)
    .execute();
  let released = 0;
  let nextAt: number | undefined;
  for (const c of circuits.slice(0, PROBES_PER_CALL)) {
    const retryAt = c.retry_at === null ? now : Number(c.retry_at);
    if (retryAt > now) {
      nextAt = nextAt === undefined ? retryAt : Math.min(nextAt, retryAt);
      continue;
    }
    // One transaction per endpoint, holding its circuit's row (PostgreSQL; SQLite has one writer):
    // two processes checking "nothing queued" at once would each make another delivery due.
    released += await dialect.writeTransaction(async (trx) => {
      const row = await trx
        .selectFrom('endpoint_circuits')
        .select(['state', 'retry_at'])
        .where('endpoint', '=', c.endpoint)
        .$if(dialect.name === 'postgres', (q) => q.forUpdate())
        .executeTakeFirst();
      if (!row || row.state === 'closed' || (row.retry_at !== null && Number(row.retry_at) > now)) return 0;
      return (await makeProbeDue(dialect, trx, c.endpoint, now)) === 'released' ? 1 : 0;
    });
  }
  if (circuits.length > PROBES_PER_CALL) nextAt = now;
  return { released, nextAt };
}

/** Circuits looked at per releaseProbes call, earliest window first. */
const PROBES_PER_CALL = 200;

/** A closed circuit's postponed deliveries, pending again with their own due times; returns how many. */
export async function releasePostponed(trx: Kysely<Database>, key: string, now: number): Promise<number> {
  const result = await trx
    .updateTable('deliveries')
    .set({ status: 'pending', updated_at: now })
    .where(sql<boolean>`status = 'postponed'`)
    .where(ofEndpoint(key))
    .executeTakeFirst();
  // The probe's stand-in waits for the window's end: the endpoint answered, so it goes now.
  await trx
    .updateTable('deliveries')
    .set({ next_attempt_at: now })
    .where(CLAIMABLE)
    .where(ofEndpoint(key))
    .where('status', '=', 'pending')
    .where('next_attempt_at', '>', now)
    .execute();
  return Number(result.numUpdatedRows);
}

/**
 * Makes this process the one that probes the endpoint: the circuit goes half-open until
 * `now + probeTimeoutMs`, if it is still as `row` read it and its time has come (an open window
 * that ended, or a probe gone unanswered). Compare and set: of several claims, one wins.
 */
export async function takeProbe(
  db: Kysely<Database>,
  row: CircuitRow,
  now: number,
  probeTimeoutMs: number,
): Promise<boolean> {
  if (row.retry_at === null || Number(row.retry_at) > now) return false;
  const result = await db
    .updateTable('endpoint_circuits')
    .set({ state: 'half_open', retry_at: now + probeTimeoutMs, updated_at: now })
    .where('endpoint', '=', row.endpoint)
    .where('state', '=', row.state)
    .where('retry_at', '=', row.retry_at)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Forgets an endpoint's circuit (its target changed, or it was deleted) and lets its deliveries go. */
export async function resetCircuit(trx: Kysely<Database>, key: string, now: number): Promise<number> {
  const gone = await trx.deleteFrom('endpoint_circuits').where('endpoint', '=', key).executeTakeFirst();
  if (Number(gone.numDeletedRows) === 0) return 0;
  return releasePostponed(trx, key, now);
}

/**
 * Inside a transaction that holds the endpoint's circuit row (read FOR UPDATE on PostgreSQL): makes
 * the endpoint's oldest postponed delivery due now, unless one of its deliveries is queued or being
 * sent already (that one is the probe). Says which, or 'none' when the endpoint has nothing to send.
 */
export async function makeProbeDue(
  dialect: StoreDialect,
  trx: Kysely<Database>,
  endpoint: string,
  now: number,
): Promise<'queued' | 'released' | 'none'> {
  const queued = await trx
    .selectFrom('deliveries')
    .select('id')
    .where(CLAIMABLE)
    .where(ofEndpoint(endpoint))
    .limit(1)
    .executeTakeFirst();
  if (queued) return 'queued';
  const oldest = await trx
    .selectFrom('deliveries')
    .select('id')
    .where(sql<boolean>`status = 'postponed'`)
    .where(ofEndpoint(endpoint))
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
  if (!oldest) return 'none';
  const moved = await trx
    .updateTable('deliveries')
    .set({ status: 'pending', next_attempt_at: now, updated_at: now })
    .where('id', '=', oldest.id)
    .where('status', '=', 'postponed')
    .executeTakeFirst();
  if (Number(moved.numUpdatedRows) === 0) return 'none';
  await dialect.notifyDue(trx);
  return 'released';
}
