// The README is a contract with the newcomer: its quick start is the two commands, its
// configuration table lists every setting the CLI reads (and nothing it does not), and every flag
// it mentions is one some command's --help lists.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/program.js';
import { SETTINGS } from '../src/config.js';

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

  it('mentions no flag that the --help of a command does not list', () => {
    // Every command's --help, as it prints it (the text added after the options included), read
    // in this process from the same program the CLI runs; cli.usage.test.ts runs --help for real.
    const helps: string[] = [];
    const collect = (command: Command) => {
      command.configureOutput({ writeOut: (text) => helps.push(text) });
      command.outputHelp();
      for (const sub of command.commands) collect(sub);
    };
    collect(buildProgram(() => {}));
    expect(helps.length).toBeGreaterThan(40);
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
