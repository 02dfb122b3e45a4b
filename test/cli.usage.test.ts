// The command line as a person meets it, through real `node dist/cli/main.js` processes: every
// command has its own --help, serve's and worker's list every setting, and a stray word, an unknown
// option or a bad value is refused in one line of countersign's own words, with exit code 2, before
// anything starts (no database file appears).
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../src/config.js';
import { VERSION } from '../src/version.js';
import { type CliResult, makeWorkspace, runCli, type Workspace } from './helpers/cli-process.js';

/** Short: a command that should be refused at once must not get to run until a long timeout. */
const REFUSAL_TIMEOUT_MS = 20_000;

const COMMANDS = [
  ['serve'],
  ['worker'],
  ['migrate'],
  ['rotate-master-key'],
  ['token'],
  ['token', 'create'],
  ['token', 'list'],
  ['token', 'revoke'],
];

let workspace: Workspace;
beforeAll(() => {
  workspace = makeWorkspace();
});
afterAll(() => workspace?.remove());

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, { ...workspace.env, ...env }, REFUSAL_TIMEOUT_MS);
}

/** Exit 2, one `countersign: …` line on stderr, nothing on stdout, and no database made. */
function expectUsageError(result: CliResult, ...mentions: string[]): void {
  expect(result.code, result.stderr).toBe(2);
  expect(result.stderr).toMatch(/^countersign: [^\n]+\n$/);
  for (const text of mentions) expect(result.stderr).toContain(text);
  expect(result.stdout).toBe('');
  expect(existsSync(workspace.env.DATABASE_URL as string)).toBe(false);
}

describe('help', () => {
  it('lists every command in countersign --help', async () => {
    const result = await run(['--help']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Usage: countersign /);
    for (const name of ['serve', 'worker', 'migrate', 'rotate-master-key', 'token', 'help']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    }
  });

  it.each(COMMANDS.map((c) => [c.join(' '), c]))('gives %s its own --help', async (name, command) => {
    const result = await run([...command, '--help']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^Usage: countersign ${name} `));
    expect(result.stderr).toBe('');
  });

  it('gives the same help through the help command', async () => {
    for (const command of [['serve'], ['token', 'create']]) {
      const viaHelp = await run(['help', ...command]);
      expect(viaHelp.code, viaHelp.stderr).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^Usage: countersign ${command.join(' ')} `));
      expect(viaHelp.stdout).toBe((await run([...command, '--help'])).stdout);
    }
  });

  it.each([['serve'], ['worker']])('lists every setting in %s --help, with its variable', async (command) => {
    const result = await run([command, '--help']);
    expect(result.code, result.stderr).toBe(0);
    for (const setting of SETTINGS) {
      const flag = setting.kind === 'switch' ? `--${setting.flag}` : `--${setting.flag} ${setting.value}`;
      expect(result.stdout).toContain(`  ${flag} `);
      expect(result.stdout).toContain(setting.variable);
    }
    expect(result.stdout).toContain('--access-log <on|off>');
    expect(result.stdout).toContain('--log-format <json|pretty>');
    // The master key is an environment variable only, and the help says so.
    expect(result.stdout).not.toContain('--master-key ');
    expect(result.stdout).toContain('COUNTERSIGN_MASTER_KEY (environment only');
  });

  it('lists the options of token create', async () => {
    const result = await run(['token', 'create', '--help']);
    for (const option of [
      '--account <name>',
      '--create-account',
      '--expires-in <duration>',
      '--scopes <list>',
      '--database <url>',
    ]) {
      expect(result.stdout).toContain(option);
    }
  });

  it('prints the version with --version', async () => {
    const result = await run(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${VERSION}\n`);
  });

  it('refuses help for a command that does not exist', async () => {
    expectUsageError(await run(['help', 'bogus']), 'unknown command "bogus"');
  });
});

describe('usage errors', () => {
  it('refuses a stray word after serve, and does not start', async () => {
    expectUsageError(await run(['serve', 'extra']), '"extra"', 'serve --help');
  });

  it('refuses a word that is not a command (which would otherwise reach serve, the default)', async () => {
    expectUsageError(await run(['bogus']), 'unknown command "bogus"');
  });

  it.each([
    [['migrate', 'extra']],
    [['worker', 'extra']],
    [['token', 'list', 'extra']],
    [['token', 'revoke', 'tok_1', 'tok_2']],
    [['token', 'bogus']],
  ])('refuses the stray word in %j', async (args) => {
    expectUsageError(await run(args), `"${args[args.length - 1]}"`);
  });

  it.each([
    [['serve', '--bogus'], '--bogus'],
    [['--bogus'], '--bogus'],
    [['worker', '--prot', '9000'], '--prot'],
    [['token', 'list', '--port', '9000'], '--port'],
    [['migrate', '--lease', '1s'], '--lease'],
  ])('refuses the unknown option in %j', async (args, option) => {
    expectUsageError(await run(args), `unknown option ${option}`);
  });

  it('suggests the option that was probably meant', async () => {
    expectUsageError(await run(['token', 'create', '--acount', 'acme']), 'did you mean --account?');
  });

  it('refuses an option without its value, and token commands without what they need', async () => {
    expectUsageError(await run(['serve', '--port']), '--port');
    expectUsageError(await run(['token', 'create']), 'needs --account');
    expectUsageError(await run(['token', 'revoke']), 'token id');
    expectUsageError(await run(['token']), 'create, list or revoke');
  });
});

describe('settings refused at start', () => {
  it('refuses serve --lease 0 with the range and the value, and exits without starting', async () => {
    const result = await run(['serve', '--port', '0', '--lease', '0']);
    expectUsageError(result);
    expect(result.stderr).toBe('countersign: --lease must be a duration from 1s to 1h, got "0"\n');
  });

  it('names the variable when the bad value comes from the environment', async () => {
    const result = await run(['serve', '--port', '0'], { COUNTERSIGN_SHUTDOWN_GRACE: '30d' });
    expectUsageError(result, 'COUNTERSIGN_SHUTDOWN_GRACE must be a duration from 100ms to 1h, got "30d"');
  });

  it('refuses a retry schedule entry past 7 days', async () => {
    const result = await run(['worker', '--retry-schedule', '0,5s,30d']);
    expectUsageError(result, '--retry-schedule entry 3 must be a duration from 0 to 7d, got "30d"');
  });

  it('refuses an unknown log level, listing the valid ones', async () => {
    const fromFlag = await run(['serve', '--port', '0', '--log-level', 'loud']);
    expectUsageError(fromFlag);
    expect(fromFlag.stderr).toBe(
      'countersign: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"\n',
    );
    const fromEnv = await run(['serve', '--port', '0'], { LOG_LEVEL: 'verbose' });
    expectUsageError(fromEnv, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"');
  });

  it('refuses a log format other than json or pretty, and an access log other than on or off', async () => {
    expectUsageError(await run(['serve', '--port', '0', '--log-format', 'xml']), '--log-format must be json or pretty');
    expectUsageError(await run(['serve', '--port', '0'], { COUNTERSIGN_ACCESS_LOG: 'loud' }), 'COUNTERSIGN_ACCESS_LOG');
  });

  it('refuses token create --expires-in 0 and an absurd expiry', async () => {
    expectUsageError(
      await run(['token', 'create', '--account', 'acme', '--expires-in', '0']),
      '--expires-in must be a duration from 1s to 3650d, got "0"',
    );
    expectUsageError(await run(['token', 'create', '--account', 'acme', '--expires-in', '99999d']), 'got "99999d"');
  });
});
