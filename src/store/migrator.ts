// Versioned migrations, run at start and by `countersign migrate`. Two processes starting at once
// must apply each migration exactly once. On PostgreSQL, Kysely's Migrator takes a
// transaction-scoped advisory lock before it reads what has run. On SQLite it takes no lock at all
// (and runs DDL outside any transaction), so there the whole run goes inside one BEGIN IMMEDIATE
// write transaction: a second process waits for the first, then finds nothing left to do, and a
// crash half-way through a migration leaves nothing half-built.
import { type Kysely, type Migration, Migrator } from 'kysely';
import type { StoreDialect } from './dialect.js';
import * as initial from './migrations/001_initial.js';
import * as fanOutVersion from './migrations/002_fan_out_version.js';
import * as typesSecretsAndLog from './migrations/003_types_secrets_and_log.js';
import * as portal from './migrations/004_portal.js';
import * as listen from './migrations/005_listen.js';
import * as deliveryControls from './migrations/006_delivery_controls.js';
import * as documents from './migrations/007_documents.js';
import * as endpointIsolation from './migrations/008_endpoint_isolation.js';
import * as eventSource from './migrations/009_event_source.js';
import * as keyedAuditChain from './migrations/010_keyed_audit_chain.js';
import * as auditLinks from './migrations/011_audit_links.js';

const MIGRATIONS: Record<string, Migration> = {
  '001_initial': initial,
  '002_fan_out_version': fanOutVersion,
  '003_types_secrets_and_log': typesSecretsAndLog,
  '004_portal': portal,
  '005_listen': listen,
  '006_delivery_controls': deliveryControls,
  '007_documents': documents,
  '008_endpoint_isolation': endpointIsolation,
  '009_event_source': eventSource,
  '010_keyed_audit_chain': keyedAuditChain,
  '011_audit_links': auditLinks,
};

export async function migrateToLatest(dialect: StoreDialect): Promise<string[]> {
  return dialect.name === 'sqlite' ? dialect.writeTransaction((conn) => migrate(conn)) : migrate(dialect.db);
}

// biome-ignore lint/suspicious/noExplicitAny: the migrator works below the typed schema.
async function migrate(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
    migrationTableName: 'countersign_migrations',
    migrationLockTableName: 'countersign_migration_lock',
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
