// The SSRF guard at work, on every dialect: registration through the API with a DNS the test plays
// (names that resolve to internal addresses are refused, names that do not resolve are accepted),
// and sends through the real dispatcher with insecure mode OFF, so https only: a real https
// receiver on 127.0.0.1 with a certificate made by openssl for this run, trusted by the dispatcher
// through its explicit `trustedCa` option. The DNS answers here are data; the only address anything
// ever connects to is 127.0.0.1 (a name that "rebinds" from a public address to 127.0.0.1 after
// registration must be refused before the connect, and the receiver must not see a single TCP
// connection). The allow-list case proves the very same path delivers when the operator allows it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createTcpServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import {
  createGuardedLookup,
  type ResolvedAddress,
  type Resolver,
  SsrfRefusedError,
} from '../src/delivery/guarded-lookup.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { offlineResolver, startTestService, type TestService } from './helpers/service.js';

// ---------------------------------------------------------------------------------------------
// Test DNS, TLS material and an https receiver that counts raw TCP connections
// ---------------------------------------------------------------------------------------------

type Answer = string[] | 'ENOTFOUND';

/** A DNS the test controls: answers can change at any time (rebinding); every question is recorded. */
function playedDns(initial: Record<string, Answer>) {
  const answers = new Map(Object.entries(initial));
  const asked: string[] = [];
  const resolve: Resolver = async (hostname) => {
    asked.push(hostname);
    const answer = answers.get(hostname) ?? 'ENOTFOUND';
    if (answer === 'ENOTFOUND') {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
    }
    return answer.map((address): ResolvedAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return {
    resolve,
    asked,
    set(hostname: string, answer: Answer) {
      answers.set(hostname, answer);
    },
    times(hostname: string) {
      return asked.filter((h) => h === hostname).length;
    },
  };
}

interface TlsMaterial {
  key: string;
  cert: string;
}

function makeCertificate(dir: string): TlsMaterial {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=countersign test receiver',
      '-addext',
      'subjectAltName=DNS:receiver.test,DNS:rebind.test,DNS:hooks.test,DNS:nowhere.test,IP:127.0.0.1',
    ],
    { stdio: 'pipe' },
  );
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

interface TlsReceiver {
  port: number;
  /** Raw TCP connections accepted, before any TLS or HTTP. */
  connections: number;
  requests: { url: string; body: string }[];
  close(): Promise<void>;
}

async function startTlsReceiver(tls: TlsMaterial): Promise<TlsReceiver> {
  const state = { connections: 0, requests: [] as { url: string; body: string }[] };
  const server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.requests.push({ url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  server.on('connection', () => {
    state.connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return state.connections;
    },
    requests: state.requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface AttemptView {
  status_code: number | null;
  error: string | null;
}
interface DeliveryView {
  id: string;
  status: string;
  target: 'subscription' | 'callback';
  attempts: AttemptView[];
}

/** Waits until the delivery of `eventId` to `target` is finished, and returns it with its attempts. */
async function finishedDelivery(
  service: TestService,
  eventId: string,
  target: 'subscription' | 'callback',
): Promise<DeliveryView> {
  return eventually(async () => {
    const list = await service.request({ method: 'GET', url: `/v1/deliveries?event_id=${eventId}` });
    const found = (list.json().deliveries as DeliveryView[]).find((d) => d.target === target);
    if (!found || (found.status !== 'delivered' && found.status !== 'failed')) return undefined;
    return (await service.request({ method: 'GET', url: `/v1/deliveries/${found.id}` })).json() as DeliveryView;
  }, `the ${target} delivery of ${eventId} to finish`);
}

const SIGNED = {
  event: 'document.signed',
  timestamp: '2025-12-18T14:30:05Z',
  data: { document_id: 'doc_88291', signer_email: 'client@example.com', audit_url: 'https://congasign.com/audit/1' },
};

async function subscribe(service: TestService, targetUrl: string) {
  return service.request({
    method: 'POST',
    url: '/v1/webhooks/subscriptions',
    payload: { target_url: targetUrl, event_type: 'document.signed' },
  });
}

async function publish(service: TestService): Promise<string> {
  const res = await service.request({ method: 'POST', url: '/v1/events', payload: SIGNED });
  expect(res.statusCode, res.body).toBe(202);
  return res.json().id as string;
}

// Two sends per delivery, so the guard is seen to vet every attempt, not just the first.
const DISPATCHER = { retrySchedule: [0, 100] };

let tlsDir: string;
let tls: TlsMaterial;
beforeAll(() => {
  tlsDir = mkdtempSync(join(tmpdir(), 'countersign-ssrf-'));
  tls = makeCertificate(tlsDir);
});
afterAll(() => {
  rmSync(tlsDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The guarded lookup on its own: plain function calls and net.connect against loopback servers
// ---------------------------------------------------------------------------------------------

describe('the guarded lookup', () => {
  const strict = { allowInsecure: false };

  function lookupOnce(
    lookup: ReturnType<typeof createGuardedLookup>,
    hostname: string,
    options: { all?: boolean; family?: number } = {},
  ): Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family: unknown }> {
    return new Promise((resolve) => {
      lookup(hostname, options, (err, address, family) => resolve({ err, address, family }));
    });
  }

  it('refuses a name when any one of its addresses is forbidden, naming it and the reason', async () => {
    const dns = playedDns({ 'mixed.test': ['8.8.8.8', '10.0.0.1'] });
    const { err } = await lookupOnce(createGuardedLookup(strict, dns.resolve), 'mixed.test', { all: true });
    expect(err).toBeInstanceOf(SsrfRefusedError);
    expect(err?.code).toBe('ERR_SSRF_REFUSED');
    expect(err?.message).toBe('ssrf: mixed.test resolves to 10.0.0.1, a private address (RFC 1918)');
  });

  it('refuses an answer that hides an internal address in an IPv6 form', async () => {
    const dns = playedDns({ 'mapped.test': ['::ffff:169.254.169.254'] });
    const { err } = await lookupOnce(createGuardedLookup(strict, dns.resolve), 'mapped.test');
    expect(err?.message).toBe(
      'ssrf: mapped.test resolves to ::ffff:169.254.169.254, an IPv4-mapped form of 169.254.169.254, ' +
        'a link-local address (the cloud metadata service)',
    );
  });

  it('refuses an answer that is not an IP address at all', async () => {
    const dns = playedDns({ 'odd.test': ['example.com'] });
    const { err } = await lookupOnce(createGuardedLookup(strict, dns.resolve), 'odd.test');
    expect(err).toBeInstanceOf(SsrfRefusedError);
  });

  it('answers in both callback forms net uses, with exactly the vetted addresses', async () => {
    const dns = playedDns({ 'public.test': ['8.8.8.8', '2606:4700:4700::1111'] });
    const lookup = createGuardedLookup(strict, dns.resolve);
    expect(await lookupOnce(lookup, 'public.test', { all: true })).toEqual({
      err: null,
      address: [
        { address: '8.8.8.8', family: 4 },
        { address: '2606:4700:4700::1111', family: 6 },
      ],
      family: undefined,
    });
    expect(await lookupOnce(lookup, 'public.test')).toEqual({ err: null, address: '8.8.8.8', family: 4 });
    expect(await lookupOnce(lookup, 'public.test', { family: 6 })).toEqual({
      err: null,
      address: '2606:4700:4700::1111',
      family: 6,
    });
  });

  it('passes resolver failures through unchanged, so they read as DNS failures', async () => {
    const dns = playedDns({});
    const { err } = await lookupOnce(createGuardedLookup(strict, dns.resolve), 'nowhere.test');
    expect(err?.code).toBe('ENOTFOUND');
  });

  it('allows everything in insecure mode, as before the guard existed', async () => {
    const dns = playedDns({ 'private.test': ['10.0.0.1'] });
    const lookup = createGuardedLookup({ allowInsecure: true }, dns.resolve);
    expect(await lookupOnce(lookup, 'private.test')).toEqual({ err: null, address: '10.0.0.1', family: 4 });
  });

  describe('under net.connect', () => {
    let server: ReturnType<typeof createTcpServer>;
    let port: number;
    let accepted = 0;
    beforeAll(async () => {
      server = createTcpServer((socket) => {
        accepted++;
        socket.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    function dial(lookup: ReturnType<typeof createGuardedLookup>, host: string): Promise<Socket | Error> {
      return new Promise((resolve) => {
        const socket = netConnect({ host, port, lookup });
        socket.once('connect', () => resolve(socket));
        socket.once('error', (err) => resolve(err));
      });
    }

    it('connects to the vetted address, asking the resolver once', async () => {
      const dns = playedDns({ 'internal.test': ['127.0.0.1'] });
      const lookup = createGuardedLookup({ allowInsecure: false, allowedCidrs: ['127.0.0.1/32'] }, dns.resolve);
      const before = accepted;
      const socket = await dial(lookup, 'internal.test');
      expect(socket).not.toBeInstanceOf(Error);
      expect((socket as Socket).remoteAddress).toBe('127.0.0.1');
      (socket as Socket).destroy();
      expect(dns.times('internal.test')).toBe(1);
      await eventually(async () => (accepted > before ? true : undefined), 'the server to accept');
    });

    it('never opens a connection when the answer is forbidden', async () => {
      const dns = playedDns({ 'internal.test': ['127.0.0.1'] });
      const before = accepted;
      const result = await dial(createGuardedLookup(strict, dns.resolve), 'internal.test');
      expect(result).toBeInstanceOf(SsrfRefusedError);
      expect((result as Error).message).toBe('ssrf: internal.test resolves to 127.0.0.1, a loopback address');
      expect(accepted).toBe(before);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Through the API and the dispatcher, on every dialect
// ---------------------------------------------------------------------------------------------

describe.each(DIALECTS)('the SSRF guard on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    describe('at registration (insecure targets off)', () => {
      const dns = playedDns({
        'private.test': ['10.0.0.5'],
        'metadata.test': ['169.254.169.254'],
        'cgnat.test': ['100.64.1.1'],
        'ula.test': ['fd00::1'],
        'mapped.test': ['::ffff:127.0.0.1'],
        'nat64.test': ['64:ff9b::c0a8:1'],
        'mixed.test': ['8.8.8.8', '192.168.1.20'],
        'public.test': ['8.8.8.8', '2606:4700:4700::1111'],
      });
      let service: TestService;
      beforeAll(async () => {
        service = await startTestService(dialect, { allowInsecureTargets: false, resolve: dns.resolve });
      });
      afterAll(async () => {
        await service.close();
      });

      async function stored(): Promise<string[]> {
        const list = await service.request({ method: 'GET', url: '/v1/webhooks/subscriptions?limit=100' });
        return (list.json().subscriptions as { target_url: string }[]).map((s) => s.target_url);
      }

      it.each([
        ['private.test', '10.0.0.5', 'a private address (RFC 1918)'],
        ['metadata.test', '169.254.169.254', 'a link-local address (the cloud metadata service)'],
        ['cgnat.test', '100.64.1.1', 'a carrier-grade NAT shared address (100.64.0.0/10)'],
        ['ula.test', 'fd00::1', 'an IPv6 unique local address (fc00::/7)'],
        ['mapped.test', '::ffff:127.0.0.1', 'an IPv4-mapped form of 127.0.0.1, a loopback address'],
        ['nat64.test', '64:ff9b::c0a8:1', 'a NAT64 form of 192.168.0.1, a private address (RFC 1918)'],
        ['mixed.test', '192.168.1.20', 'a private address (RFC 1918)'],
      ])(
        'answers 400 for a subscription to a name resolving to an internal address (%s -> %s)',
        async (host, address, reason) => {
          const res = await subscribe(service, `https://${host}/hook`);
          expect(res.statusCode, res.body).toBe(400);
          expect(res.json().error).toMatchObject({
            code: 'validation_failed',
            message: `target_url: must not point at an internal address: ${host} resolves to ${address}, ${reason}`,
          });
          expect(await stored()).not.toContain(`https://${host}/hook`);
        },
      );

      it.each([
        ['https://0x7f.1/hook', '127.0.0.1 is a loopback address'],
        ['https://2852039166/hook', '169.254.169.254 is a link-local address (the cloud metadata service)'],
        ['https://[::ffff:a9fe:a9fe]/hook', '::ffff:169.254.169.254 is an IPv4-mapped form of 169.254.169.254'],
        ['https://0300.0250.0.1/hook', '192.168.0.1 is a private address (RFC 1918)'],
        ['https://[fe80::1]/hook', 'fe80::1 is an IPv6 link-local address'],
      ])('answers 400 for the literal %s, without asking DNS', async (url, reason) => {
        const asked = dns.asked.length;
        const res = await subscribe(service, url);
        expect(res.statusCode, res.body).toBe(400);
        expect(res.json().error.message).toContain(reason);
        expect(dns.asked.length).toBe(asked);
      });

      it('refuses a port outside 80, 443 and 1024-65535, in any mode, and takes the ports an operator allows', async () => {
        for (const url of ['https://public.test:25/hook', 'https://public.test:1023/hook', 'https://8.8.8.8:22/hook']) {
          const res = await subscribe(service, url);
          expect(res.statusCode, url).toBe(400);
          expect(res.json().error.message).toBe(
            `target_url: port ${new URL(url).port} is not allowed (COUNTERSIGN_ALLOWED_TARGET_PORTS, by default 80,443,1024-65535)`,
          );
          expect(await stored()).not.toContain(url);
        }
        for (const url of ['https://public.test:443/p443', 'https://public.test:8443/p', 'https://public.test/p']) {
          expect((await subscribe(service, url)).statusCode, url).toBe(200);
        }
        const strict = await startTestService(dialect, { allowedTargetPorts: [[443, 443]] });
        try {
          expect((await subscribe(strict, 'http://127.0.0.1:8080/hook')).json().error.message).toContain(
            'port 8080 is not allowed',
          );
          expect((await subscribe(strict, 'https://your-app.example/hook')).statusCode).toBe(200);
        } finally {
          await strict.close();
        }
      });

      it('accepts a name that does not resolve yet (it is checked again at every send)', async () => {
        const res = await subscribe(service, 'https://nowhere.test/hook');
        expect(res.statusCode, res.body).toBe(200);
        expect(dns.times('nowhere.test')).toBeGreaterThanOrEqual(1);
        expect(await stored()).toContain('https://nowhere.test/hook');
      });

      it('accepts a name whose every address is public', async () => {
        const res = await subscribe(service, 'https://public.test/hook');
        expect(res.statusCode, res.body).toBe(200);
      });

      it('refuses a PATCH to an internal target and leaves the subscription as it was', async () => {
        const created = await subscribe(service, 'https://public.test/patch-me');
        expect(created.statusCode, created.body).toBe(200);
        const id = created.json().subscriptions[0].id as string;
        const res = await service.request({
          method: 'PATCH',
          url: `/v1/webhooks/subscriptions/${id}`,
          payload: { target_url: 'https://metadata.test/latest/meta-data/' },
        });
        expect(res.statusCode, res.body).toBe(400);
        expect(res.json().error.message).toContain('metadata.test resolves to 169.254.169.254');
        const after = await service.request({ method: 'GET', url: `/v1/webhooks/subscriptions/${id}` });
        expect(after.json().subscriptions[0].target_url).toBe('https://public.test/patch-me');
      });

      it('refuses an account callback to an internal target and accepts one that does not resolve', async () => {
        const put = (callbackUrl: string) =>
          service.request({
            method: 'PUT',
            url: '/api/sign/v1/callback/register',
            payload: { callbackUrl, authType: 'None' },
          });
        const refused = await put('https://private.test/callback');
        expect(refused.statusCode, refused.body).toBe(400);
        expect(refused.json().error.message).toBe(
          'callbackUrl: must not point at an internal address: private.test resolves to 10.0.0.5, a private address (RFC 1918)',
        );
        expect((await service.request({ method: 'GET', url: '/api/sign/v1/callback' })).json().callbackUrl).toBe('');
        const accepted = await put('https://nowhere.test/callback');
        expect(accepted.statusCode, accepted.body).toBe(200);
      });

      it('still refuses http and credentials whatever the DNS says', async () => {
        expect((await subscribe(service, 'http://public.test/hook')).statusCode).toBe(400);
        expect((await subscribe(service, 'https://user:pw@public.test/hook')).statusCode).toBe(400);
      });
    });

    it('lets an allow-listed CIDR through at registration, and only that CIDR', async () => {
      const dns = playedDns({ 'private.test': ['10.0.0.5'], 'metadata.test': ['169.254.169.254'] });
      const cidrs = loadConfig({}, { COUNTERSIGN_ALLOWED_TARGET_CIDRS: '10.0.0.0/8' }).allowedTargetCidrs;
      const service = await startTestService(dialect, {
        allowInsecureTargets: false,
        allowedTargetCidrs: cidrs,
        resolve: dns.resolve,
      });
      try {
        expect((await subscribe(service, 'https://private.test/hook')).statusCode).toBe(200);
        expect((await subscribe(service, 'https://10.1.2.3/hook')).statusCode).toBe(200);
        expect((await subscribe(service, 'https://metadata.test/hook')).statusCode).toBe(400);
      } finally {
        await service.close();
      }
    });

    it('accepts internal targets in insecure mode without asking DNS', async () => {
      const dns = playedDns({ 'private.test': ['10.0.0.5'] });
      const service = await startTestService(dialect, { allowInsecureTargets: true, resolve: dns.resolve });
      try {
        expect((await subscribe(service, 'https://private.test/hook')).statusCode).toBe(200);
        expect((await subscribe(service, 'http://10.0.0.5/hook')).statusCode).toBe(200);
        expect(dns.asked).toEqual([]);
      } finally {
        await service.close();
      }
    });

    describe('at send time (insecure targets off, https receiver on 127.0.0.1)', () => {
      let receiver: TlsReceiver;
      beforeAll(async () => {
        receiver = await startTlsReceiver(tls);
      });
      afterAll(async () => {
        await receiver.close();
      });

      it('delivers to an allow-listed loopback receiver over verified TLS (the path the refusals block)', async () => {
        const dns = playedDns({ 'receiver.test': ['127.0.0.1'] });
        const service = await startTestService(dialect, {
          dispatcher: DISPATCHER,
          allowInsecureTargets: false,
          allowedTargetCidrs: loadConfig({}, { COUNTERSIGN_ALLOWED_TARGET_CIDRS: '127.0.0.1/32' }).allowedTargetCidrs,
          resolve: dns.resolve,
          trustedCa: [tls.cert],
        });
        try {
          const before = receiver.requests.length;
          const created = await subscribe(service, `https://receiver.test:${receiver.port}/allowed`);
          expect(created.statusCode, created.body).toBe(200);
          const askedAtRegistration = dns.times('receiver.test');
          const eventId = await publish(service);
          const delivery = await finishedDelivery(service, eventId, 'subscription');
          expect(delivery.status).toBe('delivered');
          expect(delivery.attempts).toMatchObject([{ status_code: 200, error: null }]);
          expect(receiver.requests.slice(before).map((r) => r.url)).toEqual(['/allowed']);
          // One lookup for the one connection: the socket used the answer that was vetted.
          expect(dns.times('receiver.test') - askedAtRegistration).toBe(1);
        } finally {
          await service.close();
        }
      });

      it('refuses a name that rebinds to 127.0.0.1 after registration: the receiver sees no connection at all', async () => {
        // Registration sees a public address (data only: nothing connects at registration).
        const dns = playedDns({ 'rebind.test': ['8.8.8.8'], 'hooks.test': ['8.8.4.4'] });
        const service = await startTestService(dialect, {
          dispatcher: DISPATCHER,
          allowInsecureTargets: false,
          resolve: dns.resolve,
          trustedCa: [tls.cert],
        });
        try {
          const connectionsBefore = receiver.connections;
          const created = await subscribe(service, `https://rebind.test:${receiver.port}/hook`);
          expect(created.statusCode, created.body).toBe(200);
          const callback = await service.request({
            method: 'PUT',
            url: '/api/sign/v1/callback/register',
            payload: { callbackUrl: `https://hooks.test:${receiver.port}/callback`, authType: 'None' },
          });
          expect(callback.statusCode, callback.body).toBe(200);
          // The attacker's DNS now answers with the loopback address, before anything is sent.
          dns.set('rebind.test', ['127.0.0.1']);
          dns.set('hooks.test', ['127.0.0.1']);
          const eventId = await publish(service);

          const sub = await finishedDelivery(service, eventId, 'subscription');
          expect(sub.status).toBe('failed');
          expect(sub.attempts.length).toBe(2);
          for (const attempt of sub.attempts) {
            expect(attempt).toEqual(
              expect.objectContaining({
                status_code: null,
                error: 'ssrf: rebind.test resolves to 127.0.0.1, a loopback address',
              }),
            );
          }
          const cb = await finishedDelivery(service, eventId, 'callback');
          expect(cb.status).toBe('failed');
          expect(cb.attempts.map((a) => a.error)).toEqual([
            'ssrf: hooks.test resolves to 127.0.0.1, a loopback address',
            'ssrf: hooks.test resolves to 127.0.0.1, a loopback address',
          ]);
          expect(receiver.connections).toBe(connectionsBefore);
        } finally {
          await service.close();
        }
      });

      it('refuses literal internal targets at send time, even ones an earlier allow-list admitted', async () => {
        // The worker runs without the allow-list the API node had when these were registered.
        const service = await startTestService(dialect, {
          dispatcher: DISPATCHER,
          allowInsecureTargets: false,
          trustedCa: [tls.cert],
        });
        const lenientApi = await buildApp({
          store: service.store,
          secrets: service.secrets,
          targetPolicy: { allowInsecure: false, allowedCidrs: ['127.0.0.0/8'] },
          resolve: offlineResolver,
          logger: pino({ level: 'silent' }),
        });
        try {
          const connectionsBefore = receiver.connections;
          for (const host of ['127.0.0.1', '[::ffff:7f00:1]']) {
            const created = await lenientApi.inject({
              method: 'POST',
              url: '/v1/webhooks/subscriptions',
              headers: { authorization: `Bearer ${service.token}` },
              payload: { target_url: `https://${host}:${receiver.port}/hook`, event_type: 'document.signed' },
            });
            expect(created.statusCode, created.body).toBe(200);
          }
          const eventId = await publish(service);
          const deliveries = await eventually(async () => {
            const list = await service.request({ method: 'GET', url: `/v1/deliveries?event_id=${eventId}` });
            const all = list.json().deliveries as DeliveryView[];
            const finished = all.every((d) => d.status === 'failed' || d.status === 'delivered');
            return all.length === 2 && finished ? all : undefined;
          }, 'both deliveries to finish');
          expect(deliveries.map((d) => d.status)).toEqual(['failed', 'failed']);
          const errors = new Set<string | null>();
          for (const d of deliveries) {
            const full = (
              await service.request({ method: 'GET', url: `/v1/deliveries/${d.id}` })
            ).json() as DeliveryView;
            for (const a of full.attempts) errors.add(a.error);
          }
          expect([...errors].sort()).toEqual([
            'ssrf: 127.0.0.1 is a loopback address',
            'ssrf: ::ffff:127.0.0.1 is an IPv4-mapped form of 127.0.0.1, a loopback address',
          ]);
          expect(receiver.connections).toBe(connectionsBefore);
        } finally {
          await lenientApi.close();
          await service.close();
        }
      });

      it('refuses at send time a port the worker does not allow, in any mode: the receiver sees no connection', async () => {
        const service = await startTestService(dialect, {
          dispatcher: DISPATCHER,
          allowInsecureTargets: true,
          allowedTargetPorts: [[443, 443]],
          trustedCa: [tls.cert],
        });
        // Registered where the port was allowed (before the setting changed, or on another node).
        const lenientApi = await buildApp({
          store: service.store,
          secrets: service.secrets,
          targetPolicy: { allowInsecure: true },
          resolve: offlineResolver,
          logger: pino({ level: 'silent' }),
        });
        try {
          const connectionsBefore = receiver.connections;
          const created = await lenientApi.inject({
            method: 'POST',
            url: '/v1/webhooks/subscriptions',
            headers: { authorization: `Bearer ${service.token}` },
            payload: { target_url: `https://127.0.0.1:${receiver.port}/hook`, event_type: 'document.signed' },
          });
          expect(created.statusCode, created.body).toBe(200);
          const eventId = await publish(service);
          const [failed] = await eventually(async () => {
            const list = await service.request({ method: 'GET', url: `/v1/deliveries?event_id=${eventId}` });
            const all = list.json().deliveries as DeliveryView[];
            return all.length === 1 && all[0]?.status === 'failed' ? all : undefined;
          }, 'the delivery to fail');
          const full = (await service.request({ method: 'GET', url: `/v1/deliveries/${failed?.id}` })).json();
          expect(new Set(full.attempts.map((a: { error: string | null }) => a.error))).toEqual(
            new Set([
              `ssrf: port ${receiver.port} is not allowed (COUNTERSIGN_ALLOWED_TARGET_PORTS, by default 80,443,1024-65535)`,
            ]),
          );
          expect(receiver.connections).toBe(connectionsBefore);
        } finally {
          await lenientApi.close();
          await service.close();
        }
      });

      it('records a name that still does not resolve at send time as a DNS failure', async () => {
        const dns = playedDns({});
        const service = await startTestService(dialect, {
          dispatcher: DISPATCHER,
          allowInsecureTargets: false,
          resolve: dns.resolve,
          trustedCa: [tls.cert],
        });
        try {
          const created = await subscribe(service, `https://nowhere.test:${receiver.port}/hook`);
          expect(created.statusCode, created.body).toBe(200);
          const delivery = await finishedDelivery(service, await publish(service), 'subscription');
          expect(delivery.status).toBe('failed');
          expect(delivery.attempts.map((a) => a.error)).toEqual(['dns lookup failed', 'dns lookup failed']);
        } finally {
          await service.close();
        }
      });
    });
  });
});
