// What route plugins need from the running service, passed in explicitly (no globals).
import type { SecretBox } from '../domain/secret-box.js';
import type { TargetPolicy } from '../domain/target-url.js';
import type { GroupCommit } from '../store/group-commit.js';
import type { PublishRequest, PublishResult, Store } from '../store/store.js';

export interface AppContext {
  store: Store;
  secrets: SecretBox;
  targetPolicy: TargetPolicy;
  publisher: GroupCommit<PublishRequest, PublishResult>;
}
