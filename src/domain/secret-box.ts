// Secrets at rest (callback passwords and bearer tokens, subscription secret_tokens and signing
// secrets, the audit keys) are sealed with AES-256-GCM under the operator's master key. The sealed
// form names the key that sealed it (`v2.<keyId>.<iv>.<ciphertext+tag>`), so a master-key rotation
// can find and re-seal every value.
//
// Each value is bound to where it belongs: its purpose, table, row and account go into the
// cipher's associated data, and opening checks them. A sealed value copied into another row
// (another account's signing secret, the audit-link key into a subscription) does not open there,
// so someone who can write the database but has no master key cannot make countersign use a
// secret anywhere but where it was made. Values sealed before the binding existed (`v1.…`) are
// opened only to re-seal them (`openAny`: at start, and by rotate-master-key); `open` refuses them.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** Where a sealed value belongs. */
export interface SealContext {
  purpose: 'secret_token' | 'signing_secret' | 'password' | 'bearer_token' | 'setting';
  table: 'subscriptions' | 'callbacks' | 'countersign_settings';
  /** The row's key: a subscription's id, the callback's account id, the setting's name. */
  row: string;
  /** The account the row belongs to ('-' for settings). */
  account: string;
}

export function subscriptionSeal(
  purpose: 'secret_token' | 'signing_secret',
  sub: { id: string; account_id: string },
): SealContext {
  return { purpose, table: 'subscriptions', row: sub.id, account: sub.account_id };
}

export function callbackSeal(purpose: 'password' | 'bearer_token' | 'signing_secret', accountId: string): SealContext {
  return { purpose, table: 'callbacks', row: accountId, account: accountId };
}

export function settingSeal(key: string): SealContext {
  return { purpose: 'setting', table: 'countersign_settings', row: key, account: '-' };
}

function associatedData(context: SealContext): Buffer {
  return Buffer.from(
    `countersign sealed v2\n${context.purpose}\n${context.table}\n${context.row}\n${context.account}`,
    // Stryker disable next-line StringLiteral: Buffer.from reads an empty encoding name as UTF-8, the default
    'utf8',
  );
}

/** A value sealed before values were bound to their rows: it must be re-sealed (openAny, then seal). */
export function isLegacySealed(sealed: string): boolean {
  return sealed.startsWith('v1.');
}

export class SecretBox {
  readonly keyId: string;
  private readonly key: Buffer;
  private readonly opened = new Map<string, string>();

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
    this.key = masterKey;
    this.keyId = createHash('sha256').update(masterKey).digest('base64url').slice(0, 8);
  }

  seal(plaintext: string, context: SealContext): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(associatedData(context));
    // Stryker disable next-line StringLiteral: Cipher#update reads an empty input encoding as UTF-8, the default
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v2.${this.keyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /**
   * Opens a value sealed for `context`; throws for one sealed for anywhere else, under another
   * key, or before values were bound to their rows. Results are memoised (the dispatcher opens the
   * same secrets constantly), by value and context together.
   */
  open(sealed: string, context: SealContext): string {
    const memo = `${context.purpose}\0${context.table}\0${context.row}\0${context.account}\0${sealed}`;
    const cached = this.opened.get(memo);
    // Stryker disable next-line ConditionalExpression: `false` is equivalent: the memo only saves a decryption, and without it the value is decrypted again to the same text (a legacy value is never memoised); `true`, also silenced here, fails every open
    if (cached !== undefined) return cached;
    if (isLegacySealed(sealed)) {
      throw new Error('secret was sealed before secrets were bound to their rows: restart countersign to re-seal it');
    }
    const plaintext = this.decrypt(sealed, 'v2', associatedData(context));
    // Stryker disable next-line ConditionalExpression,EqualityOperator: the bound only caps the memo's memory; when (or whether) it is cleared cannot change what open returns
    if (this.opened.size > 10_000) this.opened.clear();
    this.opened.set(memo, plaintext);
    return plaintext;
  }

  /** Opens a value of either form: to re-seal it (start-up, rotate-master-key) or to test a key. */
  openAny(sealed: string, context: SealContext): string {
    return isLegacySealed(sealed) ? this.decrypt(sealed, 'v1', undefined) : this.open(sealed, context);
  }

  private decrypt(sealed: string, expected: 'v1' | 'v2', aad: Buffer | undefined): string {
    const [version, keyId, ivText, bodyText] = sealed.split('.');
    if (version !== expected || keyId !== this.keyId || !ivText || !bodyText) {
      throw new Error('secret was sealed under another master key or is corrupt');
    }
    const body = Buffer.from(bodyText, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(ivText, 'base64url'));
    if (aad) decipher.setAAD(aad);
    decipher.setAuthTag(body.subarray(body.length - 16));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('secret does not open here: it was sealed for another row, or under another master key');
    }
  }
}
