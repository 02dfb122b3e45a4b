// `countersign rotate-master-key`: re-seal every secret at rest under a new master key, in one
// transaction, then install the new key. It refuses while a serve or worker process uses the
// database (they hold the old key in memory, and every send they made afterwards would fail): stop
// them, rotate, start them again with the new key.
//   - key file setups: the new key replaces the file (the old one is kept beside it as .previous);
//   - COUNTERSIGN_MASTER_KEY setups: pass the new key as COUNTERSIGN_NEW_MASTER_KEY, then switch the
//     variable on every node.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { type Flags, loadConfig } from '../config.js';
import { SecretBox } from '../domain/secret-box.js';
import { describeSpan, toIsoSeconds } from '../domain/time.js';
import { decodeMasterKey, readMasterKey, verifyMasterKey } from '../master-key.js';
import { NODE_STALE_MS } from '../server.js';
import { openStore } from '../store/kysely-store.js';
import { openDialect } from '../store/open.js';
import type { NodeRecord } from '../store/store.js';

export async function rotateMasterKeyCommand(flags: Flags): Promise<number> {
  const config = loadConfig(flags);
  const source = readMasterKey(config.masterKey, config.masterKeyFile);
  if (!source) {
    throw new Error(`no master key to rotate: neither COUNTERSIGN_MASTER_KEY nor ${config.masterKeyFile} exists`);
  }
  const current = new SecretBox(source.key);
  const given = process.env.COUNTERSIGN_NEW_MASTER_KEY;
  if (config.masterKey && !given) {
    throw new Error('the master key comes from COUNTERSIGN_MASTER_KEY: pass the new one as COUNTERSIGN_NEW_MASTER_KEY');
  }
  const nextKey = given ? decodeMasterKey(given) : randomBytes(32);
  const next = new SecretBox(nextKey);
  if (next.keyId === current.keyId) throw new Error('the new master key is the same as the current one');

  const store = await openStore(openDialect(config.database));
  const staged = `${config.masterKeyFile}.next`;
  let outcome: Awaited<ReturnType<typeof store.resealSecretsUnlessInUse>>;
  try {
    await verifyMasterKey(store, current, source.origin === 'env' ? 'COUNTERSIGN_MASTER_KEY' : config.masterKeyFile);
    // The new key is on disk before any secret is sealed under it, so no crash can lose it.
    if (!config.masterKey) writeFileSync(staged, `${nextKey.toString('base64')}\n`, { mode: 0o600 });
    // Values sealed before they were bound to their rows are bound now too.
    outcome = await store.resealSecretsUnlessInUse(Date.now() - NODE_STALE_MS, (sealed, context) =>
      next.seal(current.openAny(sealed, context), context),
    );
  } catch (err) {
    // Nothing was re-sealed (the transaction rolled back): the staged key is of no use.
    if (!config.masterKey) rmSync(staged, { force: true });
    throw err;
  } finally {
    await store.close();
  }
  if (!outcome.ok) {
    if (!config.masterKey) rmSync(staged, { force: true });
    throw new Error(
      `refusing to rotate while countersign is using this database: ${outcome.live.map(describeNode).join('; ')}. ` +
        `Stop them first (a process that was killed stops counting ${describeSpan(NODE_STALE_MS)} after its last heartbeat)`,
    );
  }
  if (!config.masterKey) {
    const file = config.masterKeyFile;
    if (existsSync(file)) copyFileSync(file, `${file}.previous`);
    renameSync(staged, file);
    process.stdout.write(
      `re-sealed ${secrets(outcome.count)}; the new key is in ${file} (the old one in ${file}.previous)\n`,
    );
  } else {
    process.stdout.write(
      `re-sealed ${secrets(outcome.count)}; now set COUNTERSIGN_MASTER_KEY to the new key on every node\n`,
    );
  }
  return 0;
}

function secrets(count: number): string {
  return `${count} secret${count === 1 ? '' : 's'}`;
}

function describeNode(node: NodeRecord): string {
  const seen = Math.max(0, Math.round((Date.now() - node.heartbeatAt) / 1000));
  return `countersign ${node.kind} (pid ${node.pid} on ${node.hostname}, started ${toIsoSeconds(node.startedAt)}, last heard from ${seen} s ago)`;
}
