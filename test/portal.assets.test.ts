// The portal's files at /ui, through the real app: the built index.html is never cached, hashed
// assets are cached for a year, screens' URLs get index.html, a missing asset is a 404, every
// answer carries the strict CSP with the configured frame-ancestors, and an unbuilt portal says
// how to build it. Also COUNTERSIGN_PORTAL_FRAME_ANCESTORS's own checks.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PORTAL_ROOT } from '../src/api/portal-assets.js';
import { buildApp } from '../src/app.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { SecretBox } from '../src/domain/secret-box.js';
import { portalAddress } from '../src/server.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { captureLogs, LEVEL } from './helpers/log-capture.js';

/** One master key for every app on the store, as every process of one database has. */
const secrets = new SecretBox(randomBytes(32));

async function appWith(
  portal: Parameters<typeof buildApp>[0]['portal'],
  store: Store,
  logger: Parameters<typeof buildApp>[0]['logger'] = false,
): Promise<FastifyInstance> {
  const app = await buildApp({
    store,
    secrets,
    targetPolicy: { allowInsecure: false, allowedCidrs: [] },
    logger,
    ...(portal === undefined ? {} : { portal }),
  });
  await app.ready();
  return app;
}

describe('the portal files at /ui', () => {
  let store: Store;
  let app: FastifyInstance;
  let framed: FastifyInstance;
  const asset = readdirSync(join(DEFAULT_PORTAL_ROOT, 'assets')).find((f) => f.endsWith('.js')) as string;

  beforeAll(async () => {
    store = await openStore(openDialect({ kind: 'sqlite', path: ':memory:' }));
    app = await appWith(undefined, store);
    framed = await appWith({ frameAncestors: "'self' https://app.example.com" }, store);
  });
  afterAll(async () => {
    await app.close();
    await framed.close();
    await store.close();
  });

  it('serves index.html at /ui/, never cached, with a strict CSP and nosniff', async () => {
    const res = await app.inject({ url: '/ui/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toBe(readFileSync(join(DEFAULT_PORTAL_ROOT, 'index.html'), 'utf8'));
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
  });

  it('has no inline script or style in index.html, so the CSP holds', () => {
    const html = readFileSync(join(DEFAULT_PORTAL_ROOT, 'index.html'), 'utf8');
    for (const tag of html.match(/<script\b[^>]*>[\s\S]*?<\/script>/g) ?? []) {
      expect(tag).toMatch(/\bsrc="\/ui\/assets\/[^"]+\.js"/);
      expect(tag).toMatch(/><\/script>$/);
    }
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
  });

  it('answers a screen’s URL with index.html, so reloads and bookmarks work', async () => {
    for (const url of ['/ui/subscriptions', '/ui/deliveries/dlv_01J000000000000000000000', '/ui/events?event_type=x']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toContain('<div id="app">');
    }
    const bare = await app.inject({ url: '/ui' });
    expect(bare.statusCode).toBe(308);
    expect(bare.headers.location).toBe('/ui/');
    const root = await app.inject({ url: '/' });
    expect(root.statusCode).toBe(302);
    expect(root.headers.location).toBe('/ui/');
  });

  it('caches hashed assets for a year and answers a missing one with a 404', async () => {
    const res = await app.inject({ url: `/ui/assets/${asset}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/javascript|^application\/javascript/);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const missing = await app.inject({ url: '/ui/assets/index-00000000.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/json/);
    expect(missing.headers['cache-control']).toBeUndefined();
  });

  it('takes frame-ancestors from the setting, for a platform that embeds the portal', async () => {
    const res = await framed.inject({ url: '/ui/' });
    expect(res.headers['content-security-policy']).toMatch(/; frame-ancestors 'self' https:\/\/app\.example\.com$/);
    expect(res.headers['x-frame-options']).toBeUndefined();
  });

  it('refuses other methods with 405 and leaves the portal out of the OpenAPI document', async () => {
    const res = await app.inject({ method: 'POST', url: '/ui/', payload: {} });
    expect(res.statusCode).toBe(405);
    const doc = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/ui') || p === '/')).toEqual([]);
  });

  it('logs the portal’s files at debug in the access log, so they do not bury the API’s lines', async () => {
    const logs = captureLogs('debug');
    const logged = await appWith(undefined, store, logs.logger);
    try {
      await logged.inject({ url: '/ui/' });
      await logged.inject({ url: `/ui/assets/${asset}` });
      await logged.inject({ url: '/v1/me' });
      const access = logs.lines().filter((l) => typeof l.route === 'string');
      expect(access.map((l) => [l.route, l.level])).toEqual([
        ['/ui/', LEVEL.debug],
        ['/ui/assets/*', LEVEL.debug],
        ['/v1/me', LEVEL.info],
      ]);
    } finally {
      await logged.close();
    }
  });

  it('says how to build the portal when it is not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'countersign-noui-'));
    const unbuilt = await appWith({ frameAncestors: "'self'", root: empty }, store);
    try {
      const res = await unbuilt.inject({ url: '/ui/' });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.message).toContain('npm run build');
    } finally {
      await unbuilt.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('the portal address printed at first start', () => {
  it('reads a wildcard listening host as localhost, and keeps any other', () => {
    expect(portalAddress('http://0.0.0.0:8080')).toBe('http://localhost:8080/ui/');
    expect(portalAddress('http://[::]:8080')).toBe('http://localhost:8080/ui/');
    expect(portalAddress('http://127.0.0.1:9000')).toBe('http://127.0.0.1:9000/ui/');
    expect(portalAddress('https://webhooks.example.com')).toBe('https://webhooks.example.com/ui/');
  });
});

describe('COUNTERSIGN_PORTAL_FRAME_ANCESTORS', () => {
  const load = (value: string) => loadConfig({}, { COUNTERSIGN_PORTAL_FRAME_ANCESTORS: value }).portalFrameAncestors;

  it("defaults to 'self' and takes keywords, schemes and hosts", () => {
    expect(loadConfig({}, {}).portalFrameAncestors).toBe("'self'");
    expect(load("'none'")).toBe("'none'");
    expect(load("'self' https://app.example.com https://*.example.org:8443 https:")).toBe(
      "'self' https://app.example.com https://*.example.org:8443 https:",
    );
  });

  it('refuses what could break out of the header or mean nothing', () => {
    for (const bad of [
      "'self'; script-src *",
      'https://a.example.com,https://b.example.com',
      "'none' 'self'",
      'self',
    ]) {
      expect(() => load(bad), bad).toThrow(ConfigError);
    }
    expect(() => load("'self'; script-src *")).toThrow(/COUNTERSIGN_PORTAL_FRAME_ANCESTORS must be CSP sources/);
  });
});
