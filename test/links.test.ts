// The links countersign hands out (portal sessions, listen streams, a document's audit_url) start
// where the operator says, never where a request's Host header says: through a real server, with
// Host headers that a client can set at will.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllServe, makeWorkspace, type ServeProcess, startServe, type Workspace } from './helpers/cli-process.js';

function post(
  url: string,
  path: string,
  token: string,
  host: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, string> }> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method: 'POST',
        headers: {
          host,
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          data += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

describe('links from a server with no COUNTERSIGN_PUBLIC_URL', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let token: string;

  beforeAll(async () => {
    workspace = makeWorkspace();
    server = await startServe({ ...workspace.env, COUNTERSIGN_PUBLIC_HOSTS: 'portal.example.com' });
    token = server.printedTokens()[0] as string;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await killAllServe();
    workspace?.remove();
  });

  it('start at the address it listens on whatever Host a client sends, or at a host on COUNTERSIGN_PUBLIC_HOSTS', async () => {
    const session = await post(server.url, '/v1/portal/sessions', token, 'attacker.example', {});
    expect(session.status).toBe(201);
    expect(session.json.url).toMatch(new RegExp(`^${server.url}/ui/#token=cst_`));

    const doc = await post(server.url, '/v1/documents', token, 'attacker.example:443', {
      title: 'Links',
      signers: [{ email: 'kim@example.com' }],
    });
    expect(doc.status).toBe(201);
    expect(String(doc.json.audit_url).startsWith(`${server.url}/v1/documents/${doc.json.id}/audit?sig=`)).toBe(true);

    const allowed = await post(server.url, '/v1/portal/sessions', token, 'portal.example.com', {});
    expect(allowed.json.url).toMatch(/^http:\/\/portal\.example\.com\/ui\/#token=cst_/);
  });
});
