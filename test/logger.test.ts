// Secrets never reach the logs: pino redacts every field that can carry one.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, resolveLogFormat, unredactedLogger } from '../src/logger.js';

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

describe('log format and the access log stream', () => {
  it('is pretty for a terminal and JSON otherwise, unless LOG_FORMAT says', () => {
    expect(resolveLogFormat(undefined, { isTTY: true })).toBe('pretty');
    expect(resolveLogFormat(undefined, { isTTY: false })).toBe('json');
    expect(resolveLogFormat(undefined, {})).toBe('json');
    expect(resolveLogFormat('json', { isTTY: true })).toBe('json');
    expect(resolveLogFormat('pretty', { isTTY: false })).toBe('pretty');
  });

  it('writes access lines to the same stream at the same level, with no redaction pass', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger('warn', sink);
    const access = unredactedLogger(log);
    access.info({ route: '/v1/events' }, 'below the level');
    access.warn({ route: '/v1/events', token: 'tok_id' }, 'kept');
    log.warn({ token: 'cst_secret' }, 'redacted');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ msg: 'kept', token: 'tok_id', service: 'countersign' });
    expect(JSON.parse(lines[1] as string)).toMatchObject({ msg: 'redacted', token: '[redacted]' });
  });
});
