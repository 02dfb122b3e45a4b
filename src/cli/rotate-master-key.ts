// `countersign rotate-master-key`: re-seal every secret at rest under a new master key, in one
// transaction, then install the new key. Stop the service first (running processes hold the old
// key in memory); start it again afterwards.
//   - key file setups: the new key replaces the file (the old one is kept beside it as .previous);
//   - COUNTERSIGN_MASTER_KEY setups: pass the new key as COUNTERSIGN_NEW_MASTER_KEY, then switch the
//     variable on every node.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import { type Flags, loadConfig } from '../config.js';
import { SecretBox } from '../domain/secret-box.js';
import { decodeMasterKey, loadMasterKey } from '../master-key.js';
import { openStore } from '../store/kysely-store.js';
import { openDialect } from '../store/open.js';

export async function rotateMasterKeyCommand(flags: Flags): Promise<number> {
  const config = loadConfig(flags);
  if (!config.masterKey && !existsSync(config.masterKeyFile)) {
    throw new Error(`no master key to rotate: neither COUNTERSIGN_MASTER_KEY nor ${config.masterKeyFile} exists`);
  }
  const current = new SecretBox(loadMasterKey(config.masterKey, config.masterKeyFile).key);
  const given = process.env.COUNTERSIGN_NEW_MASTER_KEY;
  if (config.masterKey && !given) {
    throw new Error('the master key comes from COUNTERSIGN_MASTER_KEY: pass the new one as COUNTERSIGN_NEW_MASTER_KEY');
  }
  const nextKey = given ? decodeMasterKey(given) : randomBytes(32);
  const next = new SecretBox(nextKey);
  if (next.keyId === current.keyId) throw new Error('the new master key is the same as the current one');

  // The new key is on disk before any secret is sealed under it, so no crash can lose it.
  const staged = `${config.masterKeyFile}.next`;
  if (!config.masterKey) writeFileSync(staged, `${nextKey.toString('base64')}\n`, { mode: 0o600 });
  const store = await openStore(openDialect(config.database));
  let count: number;
  try {
    count = await store.resealSecrets((sealed) => next.seal(current.open(sealed)));
  } finally {
    await store.close();
  }
  if (!config.masterKey) {
    const file = config.masterKeyFile;
    copyFileSync(file, `${file}.previous`);
    renameSync(staged, file);
    process.stdout.write(`re-sealed ${count} secrets; the new key is in ${file} (the old one in ${file}.previous)\n`);
  } else {
    process.stdout.write(`re-sealed ${count} secrets; now set COUNTERSIGN_MASTER_KEY to the new key on every node\n`);
  }
  return 0;
}
