// `countersign token create|list|revoke`: manage API tokens straight in the database, so it works
// with or without a running server (SQLite's WAL lets both write the same file).
import { ALL_SCOPES, type Scope } from '../api/auth.js';
import { ConfigError, type Flags, loadConfig, parseBoundedDuration, TOKEN_EXPIRY_RANGE } from '../config.js';
import { toIsoSeconds } from '../domain/time.js';
import { issueToken } from '../domain/tokens.js';
import { openStore } from '../store/kysely-store.js';
import { openDialect } from '../store/open.js';
import type { Store } from '../store/store.js';
import { requireExistingDatabase } from './require-database.js';

export interface CreateTokenOptions {
  account: string | undefined;
  /** Make the account when there is none of that name (else a typo would make a new tenant). */
  createAccount: boolean;
  expiresIn: string | undefined;
  scopes: string | undefined;
}

/** Prints a line about the token, then the token alone on the last line (scripts take that line). */
export async function createTokenCommand(flags: Flags, options: CreateTokenOptions): Promise<number> {
  const name = options.account?.trim();
  if (!name) throw new ConfigError('token create needs --account NAME; see "countersign token create --help"');
  // Checked before the database is opened: a usage error should not depend on the database.
  const expiresInMs =
    options.expiresIn === undefined
      ? undefined
      : parseBoundedDuration('--expires-in', options.expiresIn, TOKEN_EXPIRY_RANGE);
  const scopes = parseScopes(options.scopes);
  return withStore(flags, async (store) => {
    const now = Date.now();
    const expiresAt = expiresInMs === undefined ? null : now + expiresInMs;
    const account = options.createAccount ? await store.ensureAccount(name, now) : await store.findAccount(name);
    if (!account) throw new Error(`no account "${name}"; pass --create-account to create it`);
    const issued = issueToken();
    const { id } = await store.createToken({
      accountId: account.id,
      lookup: issued.lookup,
      hash: issued.hash,
      scopes,
      expiresAt,
      now,
    });
    process.stdout.write(
      `created token ${id} for account "${account.name}" (${account.id}), scopes ${scopes.join(',')}` +
        `${expiresAt ? `, expires ${toIsoSeconds(expiresAt)}` : ''}\n${issued.token}\n`,
    );
    return 0;
  });
}

/** One tab-separated row per token (api, or a portal session's), with a header; never the tokens themselves. */
export async function listTokensCommand(flags: Flags): Promise<number> {
  return withStore(flags, async (store) => {
    const now = Date.now();
    const tokens = await store.listTokens();
    // KIND last, so scripts reading the columns before it by position keep working.
    process.stdout.write('ID\tACCOUNT\tSCOPES\tCREATED\tEXPIRES\tSTATE\tKIND\n');
    for (const t of tokens) {
      const state =
        t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active';
      process.stdout.write(
        `${t.id}\t${t.accountName}\t${t.scopes.join(',')}\t${toIsoSeconds(t.createdAt)}\t${t.expiresAt ? toIsoSeconds(t.expiresAt) : '-'}\t${state}\t${t.kind}\n`,
      );
    }
    return 0;
  });
}

export async function revokeTokenCommand(flags: Flags, id: string): Promise<number> {
  return withStore(flags, async (store) => {
    if (!(await store.revokeToken(id, Date.now()))) throw new Error(`no active token with id ${id}`);
    process.stdout.write(`revoked ${id}\n`);
    return 0;
  });
}

async function withStore(flags: Flags, work: (store: Store) => Promise<number>): Promise<number> {
  const config = loadConfig(flags);
  requireExistingDatabase(config.database);
  const store = await openStore(openDialect(config.database));
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

function parseScopes(value: string | undefined): Scope[] {
  if (value === undefined) return [...ALL_SCOPES];
  const scopes = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.length === 0) throw new ConfigError(`--scopes needs at least one of ${ALL_SCOPES.join(', ')}`);
  for (const s of scopes) {
    if (!(ALL_SCOPES as string[]).includes(s)) {
      throw new ConfigError(`--scopes: unknown scope "${s}" (use ${ALL_SCOPES.join(', ')})`);
    }
  }
  return scopes as Scope[];
}
