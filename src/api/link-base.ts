// Where the links countersign hands out start (portal session links, listen stream URLs, the
// audit_url in lifecycle webhooks). Never from a request's Host header alone: a client that sends
// `Host: attacker.example` would otherwise get a portal link, or put an audit_url into signed
// webhooks, that points at a server of its choosing.
//
// 1. COUNTERSIGN_PUBLIC_URL, when set;
// 2. else the request's own host, if it is on COUNTERSIGN_PUBLIC_HOSTS (several names for one
//    server), with the request's scheme;
// 3. else the address this server listens on (a wildcard address read as its loopback).
import type { FastifyRequest } from 'fastify';

export interface LinkSettings {
  /** COUNTERSIGN_PUBLIC_URL, an origin. */
  publicUrl?: string | undefined;
  /** COUNTERSIGN_PUBLIC_HOSTS: `host` or `host:port`, lowercase. */
  publicHosts?: readonly string[] | undefined;
  /** The origin the server listens on, once it does (server.ts); undefined before. */
  listenOrigin?: (() => string | undefined) | undefined;
}

/** Before the server listens (an app only injected into, in tests): a name that leads nowhere else. */
const NOT_LISTENING = 'http://localhost';

export function linkBase(settings: LinkSettings, request: FastifyRequest): string {
  if (settings.publicUrl) return settings.publicUrl.replace(/\/+$/, '');
  const host = request.host.toLowerCase();
  if (settings.publicHosts?.includes(host)) return `${request.protocol}://${host}`;
  return settings.listenOrigin?.() ?? NOT_LISTENING;
}

/** The origin to link to for a server listening at `url`: a wildcard address becomes its loopback. */
export function listeningOrigin(url: string): string {
  const address = new URL(url);
  if (address.hostname === '0.0.0.0') address.hostname = '127.0.0.1';
  if (address.hostname === '[::]') address.hostname = '[::1]';
  return address.origin;
}
