// What a slow or hostile client can hold of the API over real sockets: a request that trickles in
// is cut off at the inbound timeout, a request refused before its body was read closes its
// connection, and a client that behaves keeps its keep-alive connection. SQLite: nothing here
// reaches the database beyond authentication.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from './helpers/databases.js';
import { startTestService, type TestService } from './helpers/service.js';

const sqlite = DIALECTS.find((d) => d.name === 'sqlite');
if (!sqlite) throw new Error('no SQLite dialect under test');

/** A raw client: what the server sent, and whether it closed the connection. */
function rawClient(port: number) {
  const socket: Socket = connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    socket,
    received: () => received,
    closed,
    write: (text: string) => new Promise<void>((resolve) => socket.write(text, () => resolve())),
  };
}

function head(method: string, path: string, headers: Record<string, string>): string {
  const lines = Object.entries({ host: '127.0.0.1', ...headers }).map(([k, v]) => `${k}: ${v}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

describe('inbound limits over real sockets', () => {
  let service: TestService;
  let port: number;
  const open: Socket[] = [];

  beforeAll(async () => {
    service = await startTestService(sqlite, { inboundTimeoutMs: 1_000 });
    await service.app.listen({ host: '127.0.0.1', port: 0 });
    const address = service.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    port = address.port;
  });
  afterAll(async () => {
    for (const socket of open) socket.destroy();
    await service?.close();
  });

  it('cuts off a request whose body trickles in for longer than the inbound timeout', async () => {
    const client = rawClient(port);
    open.push(client.socket);
    await client.write(
      head('POST', '/v1/events', {
        authorization: `Bearer ${service.token}`,
        'content-type': 'application/json',
        'content-length': '100000',
      }),
    );
    // One byte every 100 ms: never silent, never done. The server ends it; the loop stops then.
    let sent = 0;
    const trickle = setInterval(() => {
      if (!client.socket.destroyed) client.socket.write('{');
      sent++;
    }, 100);
    try {
      await client.closed;
    } finally {
      clearInterval(trickle);
    }
    // The body was never complete, so no event was published.
    expect(sent).toBeGreaterThan(0);
    const events = await service.request({ method: 'GET', url: '/v1/events?limit=1' });
    expect(events.json().events).toEqual([]);
  });

  it('closes the connection after refusing a request whose body it did not read', async () => {
    const client = rawClient(port);
    open.push(client.socket);
    await client.write(
      head('POST', '/v1/events', {
        authorization: 'Bearer cst_not_a_real_token',
        'content-type': 'application/json',
        'content-length': '100000',
      }),
    );
    await client.write('{"event":');
    await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 401 /);
    expect(client.received().toLowerCase()).toContain('connection: close');
  });

  it('keeps the connection of a client whose refused request it read whole', async () => {
    const client = rawClient(port);
    open.push(client.socket);
    // Authenticated, and refused by validation: the body was read to be judged.
    const body = '{"event":"document.signed"}';
    const answers = () => client.received().match(/HTTP\/1\.1 \d{3}/g) ?? [];
    await client.write(
      `${head('POST', '/v1/events', {
        authorization: `Bearer ${service.token}`,
        'content-type': 'application/json',
        'content-length': String(body.length),
      })}${body}`,
    );
    // A second request on the same connection is answered: the 400 did not close it.
    await client.write(head('GET', '/healthz', {}));
    while (answers().length < 2 && !client.socket.destroyed) {
      await Promise.race([new Promise((resolve) => client.socket.once('data', resolve)), client.closed]);
    }
    expect(answers()).toEqual(['HTTP/1.1 400', 'HTTP/1.1 200']);
    expect(client.received().toLowerCase()).not.toContain('connection: close');
    client.socket.destroy();
  });
});
