// Where the master key for secrets at rest comes from: COUNTERSIGN_MASTER_KEY (32 bytes, base64 or
// hex), or else a key file, created with mode 0600 on first start so the embedded default needs no
// set-up. Nodes that share a PostgreSQL database must share the key.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface MasterKeySource {
  key: Buffer;
  origin: 'env' | 'file' | 'created';
}

export function decodeMasterKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length !== 32) throw new Error('the master key must be 32 bytes, given as 64 hex digits or base64');
  return key;
}

export function loadMasterKey(fromEnv: string | undefined, file: string): MasterKeySource {
  if (fromEnv) return { key: decodeMasterKey(fromEnv), origin: 'env' };
  try {
    return { key: decodeMasterKey(readFileSync(file, 'utf8')), origin: 'file' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(file), { recursive: true });
  const key = randomBytes(32);
  try {
    // 'wx': if another process created it a moment ago, read theirs instead.
    writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    return { key, origin: 'created' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { key: decodeMasterKey(readFileSync(file, 'utf8')), origin: 'file' };
  }
}
