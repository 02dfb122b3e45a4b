// The portal's files at /ui: the single-page app Vite builds into dist/ui (sources in ui/). Hashed
// assets are cached for a year; index.html is never cached, so the next load after an upgrade
// picks up the new build. Any other path under /ui is a screen of the app and gets index.html, so
// a screen's URL can be bookmarked and reloaded. Every answer carries a strict
// Content-Security-Policy (nothing inline, nothing from another origin) whose frame-ancestors is
// COUNTERSIGN_PORTAL_FRAME_ANCESTORS, for a platform that embeds the portal in its own pages.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CountersignError } from '../errors.js';

export interface PortalOptions {
  /** The CSP frame-ancestors source list: who may put the portal in a frame. */
  frameAncestors: string;
  /** Where the built portal is; dist/ui beside this module's package by default. */
  root?: string;
}

export const DEFAULT_FRAME_ANCESTORS = "'self'";

/** dist/ui, from src/api (tests) and from dist/api (the built server) alike. */
export const DEFAULT_PORTAL_ROOT = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

const YEAR_SECONDS = 365 * 24 * 3600;

export function contentSecurityPolicy(frameAncestors: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    // The API is on the same origin; nothing else is ever fetched.
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
    `frame-ancestors ${frameAncestors}`,
  ].join('; ');
}

export async function registerPortal(app: FastifyInstance, options: PortalOptions): Promise<void> {
  const root = options.root ?? DEFAULT_PORTAL_ROOT;
  const csp = contentSecurityPolicy(options.frameAncestors);
  const indexPath = join(root, 'index.html');
  const index = existsSync(indexPath) ? readFileSync(indexPath) : undefined;

  await app.register(async (portal) => {
    portal.addHook('onSend', (_request, reply, payload, done) => {
      reply.header('content-security-policy', csp);
      reply.header('x-content-type-options', 'nosniff');
      // A portal link's token is in the fragment, which is never sent; this keeps the path too.
      reply.header('referrer-policy', 'no-referrer');
      reply.header('cross-origin-resource-policy', 'same-origin');
      done(null, payload);
    });

    portal.get('/ui', { schema: { hide: true } }, (_request, reply) => reply.redirect('/ui/', 308));

    if (!index) {
      portal.get('/ui/*', { schema: { hide: true } }, async () => {
        throw new CountersignError(
          'unavailable',
          `the portal is not built (no ${indexPath}); run "npm run build" and restart`,
        );
      });
      return;
    }

    await portal.register(fastifyStatic, {
      root: join(root, 'assets'),
      prefix: '/ui/assets/',
      index: false,
      list: false,
      dotfiles: 'deny',
      // Vite names every asset by its content's hash: a changed file is a new URL.
      cacheControl: false,
      etag: true,
      lastModified: false,
      setHeaders: (res) => {
        res.setHeader('cache-control', `public, max-age=${YEAR_SECONDS}, immutable`);
      },
    });

    const sendIndex = (reply: FastifyReply) =>
      reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(index);
    // A screen's filters are in its query string (/ui/deliveries?status=failed); the app reads them.
    const screen = { schema: { hide: true, querystring: { type: 'object', additionalProperties: true } } };
    portal.get('/ui/', screen, (_request, reply) => sendIndex(reply));
    portal.get('/ui/*', screen, (_request, reply) => sendIndex(reply));
  });
}
