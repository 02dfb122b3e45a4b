// Secrets at rest (callback passwords and bearer tokens, subscription secret_tokens and signing
// secrets) are sealed with AES-256-GCM under the operator's master key. The sealed form names the
// key that sealed it (`v1.<keyId>.<iv>.<ciphertext+tag>`), so a master-key rotation can find and
// re-seal every value.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export class SecretBox {
  readonly keyId: string;
  private readonly key: Buffer;
  private readonly opened = new Map<string, string>();

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new Error('the master key must be 32 bytes');
    this.key = masterKey;
    this.keyId = createHash('sha256').update(masterKey).digest('base64url').slice(0, 8);
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${this.keyId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** Opens a sealed value. Results are memoised: the dispatcher opens the same secrets constantly. */
  open(sealed: string): string {
    const cached = this.opened.get(sealed);
    if (cached !== undefined) return cached;
    const [version, keyId, ivText, bodyText] = sealed.split('.');
    if (version !== 'v1' || keyId !== this.keyId || !ivText || !bodyText) {
      throw new Error('secret was sealed under another master key or is corrupt');
    }
    const body = Buffer.from(bodyText, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(ivText, 'base64url'));
    decipher.setAuthTag(body.subarray(body.length - 16));
    const plaintext = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString(
      'utf8',
    );
    if (this.opened.size > 10_000) this.opened.clear();
    this.opened.set(sealed, plaintext);
    return plaintext;
  }
}
