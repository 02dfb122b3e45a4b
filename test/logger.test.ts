// Secrets never reach the logs: pino redacts every field that can carry one.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

describe('log redaction', () => {
  it('writes no password, bearer token, secret_token, signing secret or Authorization header', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger('info', sink);
    log.info({ req: { headers: { authorization: 'Bearer cst_secretvalue1' } } }, 'request');
    log.info({ body: { password: 'pw-secretvalue2', bearerToken: 'bt-secretvalue3' } }, 'callback');
    log.info({ subscription: { secret_token: 'st-secretvalue4', signing_secret: 'whsec_secretvalue5' } }, 'sub');
    log.info({ password: 'pw-secretvalue6', token: 'cst_secretvalue7' }, 'top level');
    const text = lines.join('');
    expect(lines).toHaveLength(4);
    for (let i = 1; i <= 7; i++) expect(text).not.toContain(`secretvalue${i}`);
    expect(text).toContain('[redacted]');
  });
});
