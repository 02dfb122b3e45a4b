// `countersign token create|list|revoke`: manage API tokens straight in the database, so it works
// with or without a running server (SQLite's WAL lets both write the same file).
import { ALL_SCOPES, type Scope } from '../api/auth.js';
import { type Flags, loadConfig } from '../config.js';
import { parseDuration, toIsoSeconds } from '../domain/time.js';
import { issueToken } from '../domain/tokens.js';
import { openStore } from '../store/kysely-store.js';
import { openDialect } from '../store/open.js';

export async function tokenCommand(flags: Flags, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const config = loadConfig(flags);
  const store = await openStore(openDialect(config.database));
  try {
    const now = Date.now();
    switch (action) {
      case 'create': {
        const name = typeof flags.account === 'string' ? flags.account.trim() : '';
        if (!name) throw new Error('token create needs --account NAME');
        let expiresAt: number | null = null;
        if (typeof flags['expires-in'] === 'string') {
          const ms = parseDuration(flags['expires-in']);
          if (ms === undefined || ms <= 0) throw new Error('--expires-in takes a duration such as 12h or 30d');
          expiresAt = now + ms;
        }
        const scopes = parseScopes(flags.scopes);
        const account = await store.ensureAccount(name, now);
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
      }
      case 'list': {
        const tokens = await store.listTokens();
        process.stdout.write('ID\tACCOUNT\tSCOPES\tCREATED\tEXPIRES\tSTATE\n');
        for (const t of tokens) {
          const state =
            t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active';
          process.stdout.write(
            `${t.id}\t${t.accountName}\t${t.scopes.join(',')}\t${toIsoSeconds(t.createdAt)}\t${t.expiresAt ? toIsoSeconds(t.expiresAt) : '-'}\t${state}\n`,
          );
        }
        return 0;
      }
      case 'revoke': {
        const id = rest[0];
        if (!id) throw new Error('token revoke needs a token id (see token list)');
        if (!(await store.revokeToken(id, now))) {
          process.stderr.write(`no active token with id ${id}\n`);
          return 1;
        }
        process.stdout.write(`revoked ${id}\n`);
        return 0;
      }
      default:
        throw new Error('usage: countersign token create --account NAME | token list | token revoke ID');
    }
  } finally {
    await store.close();
  }
}

function parseScopes(value: string | boolean | undefined): Scope[] {
  if (typeof value !== 'string') return [...ALL_SCOPES];
  const scopes = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of scopes)
    if (!(ALL_SCOPES as string[]).includes(s)) throw new Error(`unknown scope "${s}" (use ${ALL_SCOPES.join(', ')})`);
  return scopes as Scope[];
}
