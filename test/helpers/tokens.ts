// A fresh API token of an account, written straight to a store: how tests get credentials without
// going through the first start or the CLI.
import { ALL_SCOPES, type Scope } from '../../src/api/auth.js';
import { issueToken } from '../../src/domain/tokens.js';
import type { Store, TokenKind } from '../../src/store/store.js';

export interface TokenOptions {
  scopes?: Scope[];
  expiresAt?: number | null;
  kind?: TokenKind;
  /** When it was made (now unless given). */
  now?: number;
}

/** Issues a token for the account (every scope unless given) and returns it with its id. */
export async function addToken(
  store: Store,
  accountId: string,
  options: TokenOptions = {},
): Promise<{ token: string; id: string }> {
  const issued = issueToken();
  const { id } = await store.createToken({
    accountId,
    lookup: issued.lookup,
    hash: issued.hash,
    scopes: options.scopes ?? ALL_SCOPES,
    expiresAt: options.expiresAt ?? null,
    now: options.now ?? Date.now(),
    ...(options.kind ? { kind: options.kind } : {}),
  });
  return { token: issued.token, id };
}
