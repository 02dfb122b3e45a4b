// The README is a contract with the newcomer: its quick start is the two commands, its
// configuration table lists every setting the CLI reads (and nothing it does not), and every flag
// it mentions is one some command's --help lists.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../src/config.js';
import { runCli } from './helpers/cli-process.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function section(title: string): string {
  const start = README.indexOf(`## ${title}\n`);
  const end = README.indexOf('\n## ', start + 3);
  return README.slice(start, end === -1 ? undefined : end);
}

describe('the README', () => {
  it('starts with exactly the two quick-start lines', () => {
    const block = /```sh\n([\s\S]*?)```/.exec(section('Quick start'))?.[1] ?? '';
    expect(block.trim().split('\n')).toEqual(['npm install && npm start', 'npm install && npm test']);
  });

  it('lists every setting in its configuration table, with its variable and flag', () => {
    const rows = section('Configuration')
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    const byVariable = new Map(rows.map((cells) => [cells[1]?.replaceAll('`', ''), cells[2]?.replaceAll('`', '')]));
    for (const setting of SETTINGS)
      expect(byVariable.get(setting.variable), setting.variable).toBe(`--${setting.flag}`);
    const known = new Set<string>([
      ...SETTINGS.map((s) => s.variable),
      'COUNTERSIGN_MASTER_KEY',
      'COUNTERSIGN_NEW_MASTER_KEY',
    ]);
    for (const variable of byVariable.keys()) expect(known.has(variable as string), variable).toBe(true);
  });

  it('mentions no flag that the --help of a command does not list', async () => {
    const helps = await Promise.all(
      [
        ['serve'],
        ['worker'],
        ['migrate'],
        ['rotate-master-key'],
        ['purge'],
        ['erasure'],
        ['token', 'create'],
        ['token', 'list'],
        ['token', 'revoke'],
        ['login'],
        ['trigger'],
        ['listen'],
        ['replay'],
        ...['list', 'get', 'create', 'pause', 'resume', 'delete', 'rotate-secret', 'test'].map((c) => [
          'subscriptions',
          c,
        ]),
        ...['list', 'get'].map((c) => ['events', c]),
        ...['list', 'get', 'redeliver', 'tail'].map((c) => ['deliveries', c]),
        ...['create', 'list', 'get', 'send', 'sign', 'decline'].map((c) => ['documents', c]),
        ['audit', 'verify'],
      ].map(async (command) => (await runCli([...command, '--help'], process.env)).stdout),
    );
    const help = helps.join('\n');
    const flags = new Set([...README.matchAll(/(?<![\w-])--[a-z][a-z-]+/g)].map((m) => m[0]));
    // The benchmark's flags (bench/README.md) and npm's own.
    for (const flag of [
      '--quick',
      '--only',
      '--runs',
      '--events',
      '--profile',
      '--node-args',
      '--drain-cap',
      '--workspace',
    ])
      flags.delete(flag);
    expect(flags.size).toBeGreaterThan(20);
    for (const flag of flags) expect(help, flag).toContain(flag);
  });
});
