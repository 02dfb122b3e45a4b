// Picks the dialect from DATABASE_URL: a postgres:// URL selects PostgreSQL; a file path or a
// sqlite: URL selects SQLite.
import { resolve } from 'node:path';
import type { StoreDialect } from './dialect.js';
import { openPostgres } from './postgres/postgres-dialect.js';
import { openSqlite } from './sqlite/sqlite-dialect.js';

export type DatabaseLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export function parseDatabaseUrl(value: string): DatabaseLocation {
  if (/^postgres(ql)?:\/\//i.test(value)) return { kind: 'postgres', url: value };
  if (value.startsWith('sqlite:')) {
    const rest = value.slice('sqlite:'.length).replace(/^\/\//, '');
    return { kind: 'sqlite', path: rest === ':memory:' ? rest : resolve(rest) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new Error(
      `unsupported database URL scheme in "${value.split(':')[0]}:" (use a file path, sqlite: or postgres://)`,
    );
  }
  return { kind: 'sqlite', path: value === ':memory:' ? value : resolve(value) };
}

export interface OpenOptions {
  /** PostgreSQL connection pool size. */
  poolSize?: number;
  /** Told about trouble the store works around by itself (SQLite's checkpoint thread failing). */
  warn?: (err: Error, message: string) => void;
}

export function openDialect(location: DatabaseLocation, options: OpenOptions = {}): StoreDialect {
  return location.kind === 'postgres'
    ? openPostgres(location.url, options.poolSize)
    : openSqlite(location.path, options.warn);
}

/** A URL with any password replaced, for logs. */
export function describeLocation(location: DatabaseLocation): string {
  if (location.kind === 'sqlite') return `sqlite:${location.path}`;
  try {
    const url = new URL(location.url);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
