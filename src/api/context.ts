// What route plugins need from the running service, passed in explicitly (no globals).

import type { Resolver } from '../delivery/guarded-lookup.js';
import type { FixedWindowLimiter } from '../domain/rate-limit.js';
import type { SecretBox } from '../domain/secret-box.js';
import type { TargetPolicy } from '../domain/target-url.js';
import type { GroupCommit } from '../store/group-commit.js';
import type { PublishRequest, PublishResult, Store } from '../store/store.js';

export interface AccountQuotas {
  /** Live subscriptions (the account callback not counted). */
  subscriptions: number;
  /**
   * Deliveries one batch may make, all its events together: one transaction holds the writer while
   * it inserts them (a single publish is bounded by the subscriptions quota).
   */
  deliveriesPerBatch: number;
  /** Portal sessions open at once (neither ended nor expired): each is a token that may be used. */
  portalSessions: number;
}

export const DEFAULT_QUOTAS: AccountQuotas = {
  subscriptions: 1_000,
  deliveriesPerBatch: 25_000,
  portalSessions: 1_000,
};

export interface AppContext {
  /** What one account may hold. */
  quotas: AccountQuotas;
  /** Erasures per account (each may rebuild the SQLite file); undefined when unlimited. */
  erasureLimiter: FixedWindowLimiter | undefined;
  store: Store;
  secrets: SecretBox;
  targetPolicy: TargetPolicy;
  /** Resolves target host names for the registration-time SSRF check (api/target-guard.ts). */
  resolve: Resolver;
  publisher: GroupCommit<PublishRequest, PublishResult>;
  /** A batch in one transaction of its own: all stored, or none (BatchRefusedError). */
  publishBatch(items: PublishRequest[]): Promise<PublishResult[]>;
}
