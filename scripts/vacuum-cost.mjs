// How long an erasure's SQLite rebuild (VACUUM, then a TRUNCATE checkpoint) holds the writer, on a
// file shaped like countersign's history: `node scripts/vacuum-cost.mjs [events]` (default 200,000
// events with two attempts each, about 250 MB). Uses countersign's pragmas (WAL, synchronous NORMAL,
// a temporary file for VACUUM's copy, as store/erasure.ts sets it) and removes its file afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const events = Number(process.argv[2] ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'countersign-vacuum-'));
try {
  const db = new Database(join(dir, 'history.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -16384');
  db.exec(`create table events (id text primary key, account_id text, data text, created_at integer);
    create index events_account on events (account_id, id);
    create table attempts (delivery_id text, number integer, response_excerpt text,
      primary key (delivery_id, number)) without rowid;`);
  const event = db.prepare('insert into events values (?, ?, ?, ?)');
  const attempt = db.prepare('insert into attempts values (?, ?, ?)');
  const fill = db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const id = String(i).padStart(12, '0');
      const data = JSON.stringify({
        document_id: `doc_${i}`,
        signer_email: `signer${i}@example.com`,
        audit_url: `https://sign.example.com/audit/${i}`,
        note: 'x'.repeat(200),
      });
      event.run(`evt_${id}`, 'acc_1', data, i);
      attempt.run(`dlv_${id}`, 1, data);
      attempt.run(`dlv_${id}`, 2, data);
    }
  });
  for (let i = 0; i < events; i += 10_000) fill(i, Math.min(events, i + 10_000));
  db.pragma('wal_checkpoint(TRUNCATE)');
  const { size } = db.prepare('select page_count * page_size as size from pragma_page_count, pragma_page_size').get();
  db.pragma('temp_store = FILE');
  const started = performance.now();
  db.exec('vacuum');
  const vacuumed = performance.now();
  db.pragma('wal_checkpoint(TRUNCATE)');
  const done = performance.now();
  process.stdout.write(
    `${events} events, ${(size / 1e6).toFixed(0)} MB: VACUUM ${(vacuumed - started).toFixed(0)} ms, ` +
      `checkpoint ${(done - vacuumed).toFixed(0)} ms\n`,
  );
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
