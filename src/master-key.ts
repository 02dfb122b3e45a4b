// Where the master key for secrets at rest comes from: COUNTERSIGN_MASTER_KEY (32 bytes, base64 or
// hex), or else a key file, created with mode 0600 on first start so the embedded default needs no
// set-up. Nodes that share a PostgreSQL database must share the key.
//
// A process holding the wrong key cannot sign a single webhook, so it must not start: the key is
// checked against the database first (a value sealed under it, kept in countersign_settings), and
// a key file is never made afresh for a database that already holds sealed secrets.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type SealContext, SecretBox, settingSeal } from './domain/secret-box.js';
import { MASTER_KEY_CHECK } from './store/reseal.js';
import type { Store } from './store/store.js';

export interface MasterKeySource {
  key: Buffer;
  origin: 'env' | 'file' | 'created';
}

/** What the check value opens to under the right key. */
const CHECK_TEXT = 'countersign master key check v1';

/** The master key does not open what the database holds (or none can be made for it). */
export class MasterKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

export function decodeMasterKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length !== 32) throw new Error('the master key must be 32 bytes, given as 64 hex digits or base64');
  return key;
}

/** The configured key, or undefined when there is no variable and no key file yet. */
export function readMasterKey(fromEnv: string | undefined, file: string): MasterKeySource | undefined {
  if (fromEnv) return { key: decodeMasterKey(fromEnv), origin: 'env' };
  try {
    return { key: decodeMasterKey(readFileSync(file, 'utf8')), origin: 'file' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return undefined;
  }
}

/** Makes a new key file (mode 0600); if another process made one a moment ago, reads theirs. */
export function createMasterKeyFile(file: string): MasterKeySource {
  mkdirSync(dirname(file), { recursive: true });
  const key = randomBytes(32);
  try {
    writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    return { key, origin: 'created' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { key: decodeMasterKey(readFileSync(file, 'utf8')), origin: 'file' };
  }
}

/** readMasterKey, creating the key file when there is none (tests, and databases with no secrets). */
export function loadMasterKey(fromEnv: string | undefined, file: string): MasterKeySource {
  return readMasterKey(fromEnv, file) ?? createMasterKeyFile(file);
}

/** The id of the key a sealed value names (`v1.<keyId>.…`), for messages. */
function keyIdOf(sealed: string): string {
  return sealed.split('.')[1] ?? 'unknown';
}

function opens(box: SecretBox, sample: { sealed: string; context: SealContext }): boolean {
  try {
    box.openAny(sample.sealed, sample.context);
    return true;
  } catch {
    return false;
  }
}

/**
 * The key for this database: the configured one, or a new key file when the database holds no
 * sealed secret yet. Refuses (MasterKeyError) when the key file is missing but the database holds
 * secrets, and when the key does not open them. Returns the check value it verified, so a running
 * process can tell later that the key was rotated under it.
 */
export async function masterKeyFor(
  store: Store,
  fromEnv: string | undefined,
  file: string,
): Promise<{ secrets: SecretBox; source: MasterKeySource; check: string }> {
  let source = readMasterKey(fromEnv, file);
  if (!source) {
    const stored = await store.anySealedSecret();
    if (stored !== undefined) {
      throw new MasterKeyError(
        `the master key file ${file} does not exist, but this database holds secrets sealed under master key ` +
          `${keyIdOf(stored.sealed)}: restore that key file, or set COUNTERSIGN_MASTER_KEY (a new key would open none of them)`,
      );
    }
    source = createMasterKeyFile(file);
  }
  const secrets = new SecretBox(source.key);
  const where = source.origin === 'env' ? 'COUNTERSIGN_MASTER_KEY' : file;
  const check = await verifyMasterKey(store, secrets, where);
  return { secrets, source, check };
}

/**
 * Checks `secrets` against the database, and records the check value when there is none yet (a
 * database set up before the check existed is first tested against a secret it holds).
 */
export async function verifyMasterKey(store: Store, secrets: SecretBox, where: string): Promise<string> {
  const refuse = (sealed: string) =>
    new MasterKeyError(
      `the master key from ${where} (key ${secrets.keyId}) does not open the secrets in this database, which were ` +
        `sealed under key ${keyIdOf(sealed)}: start with the key this database uses (after rotate-master-key, the new one)`,
    );
  const check = await store.getSetting(MASTER_KEY_CHECK);
  if (check !== undefined) {
    if (!opensTo(secrets, check)) throw refuse(check);
    return check;
  }
  const sample = await store.anySealedSecret();
  if (sample !== undefined && !opens(secrets, sample)) throw refuse(sample.sealed);
  // Two processes may record a check at once: whichever is stored is the one both are held to.
  const stored = await store.putSettingIfAbsent(
    MASTER_KEY_CHECK,
    secrets.seal(CHECK_TEXT, settingSeal(MASTER_KEY_CHECK)),
  );
  if (!opensTo(secrets, stored)) throw refuse(stored);
  return stored;
}

function opensTo(secrets: SecretBox, sealed: string): boolean {
  try {
    // Either form: a check value from before values were bound to their rows is re-sealed after.
    return secrets.openAny(sealed, settingSeal(MASTER_KEY_CHECK)) === CHECK_TEXT;
  } catch {
    return false;
  }
}
