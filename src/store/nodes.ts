// The processes using the database, and small settings kept in it. A serve or worker process
// registers itself at start, keeps a heartbeat while it runs and removes itself when it stops, so
// maintenance that must not run under a live process (master-key rotation) can see who is there.
// A killed process leaves its row behind; it stops counting once its heartbeat is stale. The
// heartbeat also deletes the per-minute attempt figures that have aged out, so that small chore
// runs every few seconds somewhere without a timer of its own.
import { type Kysely, sql } from 'kysely';
import type { StoreDialect } from './dialect.js';
import { ATTEMPT_STATS_KEEP_MS } from './queue/record-attempts.js';
import type { Database, NodesTable } from './schema.js';
import type { NodeRecord } from './store.js';

/** Rows of processes silent for this long are deleted when another process registers. */
const FORGET_AFTER_MS = 24 * 3_600_000;

function toNode(row: NodesTable): NodeRecord {
  return {
    id: row.id,
    kind: row.kind as NodeRecord['kind'],
    hostname: row.hostname,
    pid: row.pid,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
  };
}

export function registerNode(d: StoreDialect, node: NodeRecord): Promise<void> {
  return d.writeTransaction(async (trx) => {
    await trx
      .deleteFrom('countersign_nodes')
      .where('heartbeat_at', '<', node.heartbeatAt - FORGET_AFTER_MS)
      .execute();
    await trx
      .insertInto('countersign_nodes')
      .values({
        id: node.id,
        kind: node.kind,
        hostname: node.hostname,
        pid: node.pid,
        started_at: node.startedAt,
        heartbeat_at: node.heartbeatAt,
      })
      .execute();
  });
}

export function heartbeatNode(d: StoreDialect, id: string, now: number): Promise<boolean> {
  return d.writeTransaction(async (trx) => {
    const result = await trx
      .updateTable('countersign_nodes')
      .set({ heartbeat_at: now })
      .where('id', '=', id)
      .executeTakeFirst();
    // Through the index on minute: usually nothing, one minute's rows at most once a minute, and
    // after a long stop whatever aged out meanwhile. Every process does it; the first finds the rows.
    await trx
      .deleteFrom('attempt_stats')
      .where('minute', '<', now - ATTEMPT_STATS_KEEP_MS)
      .execute();
    return Number(result.numUpdatedRows) > 0;
  });
}

export async function removeNode(db: Kysely<Database>, id: string): Promise<void> {
  await db.deleteFrom('countersign_nodes').where('id', '=', id).execute();
}

export async function liveNodes(db: Kysely<Database>, freshSince: number): Promise<NodeRecord[]> {
  const rows = await db
    .selectFrom('countersign_nodes')
    .selectAll()
    .where('heartbeat_at', '>', freshSince)
    .orderBy('started_at')
    .execute();
  return rows.map(toNode);
}

/**
 * Runs `work` in a write transaction unless a live process is registered. On PostgreSQL the table
 * lock makes a registering process wait for this transaction (its INSERT needs a lock that EXCLUSIVE
 * excludes), and makes this one wait for a registration in progress; on SQLite there is one writer.
 */
export function unlessInUse<T>(
  d: StoreDialect,
  freshSince: number,
  work: (trx: Kysely<Database>) => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; live: NodeRecord[] }> {
  return d.writeTransaction(async (trx) => {
    if (d.name === 'postgres') await sql`lock table countersign_nodes in exclusive mode`.execute(trx);
    const live = await liveNodes(trx, freshSince);
    if (live.length > 0) return { ok: false as const, live };
    return { ok: true as const, value: await work(trx) };
  });
}

export async function getSetting(db: Kysely<Database>, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('countersign_settings').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value;
}

export async function putSettingIfAbsent(d: StoreDialect, key: string, value: string): Promise<string> {
  return d.writeTransaction(async (trx) => {
    await trx
      .insertInto('countersign_settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return (await getSetting(trx, key)) as string;
  });
}
