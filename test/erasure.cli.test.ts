// `countersign erasure` as an operator runs it: the built CLI as a child process against a real
// `countersign serve` (SQLite), through the HTTP API with an admin token.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killAllServe,
  makeWorkspace,
  runCli,
  type ServeProcess,
  startServe,
  type Workspace,
} from './helpers/cli-process.js';

const ERASE = 'cli.erase@example.com';

describe('countersign erasure', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let home: string;
  let env: NodeJS.ProcessEnv;

  const publish = async (signer: string, documentId: string): Promise<string> => {
    const res = await fetch(`${server.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.COUNTERSIGN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        event: 'document.signed',
        data: { document_id: documentId, signer_email: signer, audit_url: 'https://sign.example.com/a' },
      }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  };
  const dataOf = async (id: string) => {
    const res = await fetch(`${server.url}/v1/events/${id}`, {
      headers: { authorization: `Bearer ${env.COUNTERSIGN_TOKEN}` },
    });
    return ((await res.json()) as { data: Record<string, unknown> }).data;
  };

  beforeAll(async () => {
    workspace = makeWorkspace();
    // Each erasure here rebuilds the file at once (the interval has tests of its own).
    server = await startServe({ ...workspace.env, COUNTERSIGN_ERASURE_REBUILD_INTERVAL: '1ms' });
    home = mkdtempSync(join(tmpdir(), 'countersign-home-'));
    env = {
      ...process.env,
      XDG_CONFIG_HOME: home,
      COUNTERSIGN_API_URL: server.url,
      COUNTERSIGN_TOKEN: server.printedTokens()[0] as string,
    };
    delete env.NODE_OPTIONS;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await killAllServe();
    workspace?.remove();
    rmSync(home, { recursive: true, force: true });
  });

  it('erases by address and prints the counts, or the API’s JSON with --json', async () => {
    const gone = await publish(ERASE, 'doc_cli_1');
    const kept = await publish('cli.keep@example.com', 'doc_cli_2');
    const result = await runCli(['erasure', '--signer-email', ERASE.toUpperCase()], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('erased 1 event, cancelled 0 deliveries, scrubbed 0 attempts\n');
    expect(await dataOf(gone)).toEqual({ erased: true });
    expect((await dataOf(kept)).signer_email).toBe('cli.keep@example.com');

    const json = await runCli(['erasure', '--document-id', 'doc_cli_2', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      events_erased: 1,
      deliveries_cancelled: 0,
      attempts_scrubbed: 0,
      documents_scrubbed: 0,
      complete: true,
      warnings: [],
    });
    expect(await dataOf(kept)).toEqual({ erased: true });
  });

  it('needs exactly one of --signer-email and --document-id (exit 2), and says what the API refuses (exit 1)', async () => {
    for (const args of [['erasure'], ['erasure', '--signer-email', ERASE, '--document-id', 'doc_1']]) {
      const result = await runCli(args, env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toBe(
        'countersign: erasure needs exactly one of --signer-email and --document-id; see "countersign erasure --help"\n',
      );
    }
    const refused = await runCli(['erasure', '--signer-email', 'no address'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('countersign: signer_email: must be an email address\n');
  });
});
