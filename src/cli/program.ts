// `countersign <command>`: the command line's grammar and help (commander); what each command does
// is in its own file in this folder. Options are made from the settings list in config.ts, and only
// the options given on the command line are handed on, so loadConfig can let them win over the
// environment. main.ts runs it and turns its errors into one line on stderr.
import { Command, type CommanderError, Option } from 'commander';
import { ALL_SCOPES } from '../api/auth.js';
import {
  describeSetting,
  type Flags,
  formatDuration,
  loadConfig,
  SETTINGS,
  type Setting,
  type SettingFlag,
  TOKEN_EXPIRY_RANGE,
} from '../config.js';
import { VERSION } from '../version.js';
import { addApiCommands } from './api-commands.js';
import { addDocumentCommands } from './document-commands.js';
import { requireExistingDatabase } from './require-database.js';

/** A usage error countersign finds itself (commander finds the others): exit 2. */
export class UsageError extends Error {}

/** Ends the run with this code, after printing `line` (nothing when it is empty). */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    line: string,
  ) {
    super(line);
  }
}

const MASTER_KEY_NOTE = `
COUNTERSIGN_MASTER_KEY (environment only: a key on the command line would show in ps) holds the
32-byte master key, hex or base64; when it is set, the key file is not used.`;

function settingOption(flag: SettingFlag): Option {
  const setting = SETTINGS.find((s) => s.flag === flag) as Setting;
  const flags = setting.kind === 'switch' ? `--${setting.flag}` : `--${setting.flag} ${setting.value}`;
  return new Option(flags, describeSetting(setting));
}

/** The options given on the command line, by flag name, as loadConfig reads them. */
function flagsOf(command: Command): Flags {
  const flags: Flags = {};
  for (const option of command.options) {
    const key = option.attributeName();
    if (option.long === undefined || command.getOptionValueSource(key) !== 'cli') continue;
    // `--no-dispatcher` is stored by commander as dispatcher=false; loadConfig reads the switch.
    flags[option.long.slice(2)] = option.negate ? true : (command.getOptionValue(key) as string | boolean);
  }
  return flags;
}

export function buildProgram(done: (code: number) => void): Command {
  const program = new Command('countersign')
    .description(`webhook delivery for e-signature events (${VERSION})`)
    .version(VERSION, '-v, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help')
    // commander's own error lines are replaced by ours (see describeUsageError).
    .configureOutput({ outputError: () => {} })
    .addHelpText(
      'after',
      '\nWith no command, countersign runs serve. Each command has its own --help, listing its options\n' +
        'and the environment variable each one reads (flags win over the environment).',
    );

  addHelpCommand(program);

  const serve = program
    .command('serve', { isDefault: true })
    .description('run the HTTP API and the dispatcher (the default command)');
  const worker = program.command('worker').description('run the dispatcher only, for scale-out on PostgreSQL');
  for (const command of [serve, worker]) {
    for (const setting of SETTINGS) command.addOption(settingOption(setting.flag));
    command.addHelpText('after', MASTER_KEY_NOTE);
  }
  // Each command's module is imported when it runs: --help, --version and usage errors then answer
  // without loading the server, the store and their dependencies first.
  serve.action(async (_options, command: Command) => {
    const { serveCommand } = await import('./serve.js');
    done(await serveCommand(flagsOf(command), { api: true }));
  });
  worker.action(async (_options, command: Command) => {
    const flags = flagsOf(command);
    requireExistingDatabase(loadConfig(flags).database);
    const { serveCommand } = await import('./serve.js');
    done(await serveCommand(flags, { api: false }));
  });

  program
    .command('migrate')
    .description('apply the database migrations and exit (serve does this at start too)')
    .addOption(settingOption('database'))
    .action(async (_options, command: Command) => {
      const { migrateCommand } = await import('./migrate.js');
      done(await migrateCommand(flagsOf(command)));
    });

  program
    .command('purge')
    .description('remove old events with their finished deliveries and attempts, as COUNTERSIGN_RETENTION does')
    // Checked by the command, not made a required option (see token create).
    .option('--older-than <duration>', 'events created longer ago than this, e.g. 30d or 12h (required)')
    .option('--dry-run', 'print what would be removed, and change nothing')
    .addOption(settingOption('database'))
    .addHelpText(
      'after',
      '\nAn event with a delivery not yet made (pending, sending, held or waiting) is kept, with all its\n' +
        'deliveries. Works while the server runs: it purges in small transactions, as the server does.',
    )
    .action(async (options: { olderThan?: string; dryRun?: true }, command: Command) => {
      const { purgeCommand } = await import('./purge.js');
      done(await purgeCommand(flagsOf(command), { olderThan: options.olderThan, dryRun: options.dryRun === true }));
    });

  program
    .command('rotate-master-key')
    .description('re-seal every secret at rest under a new master key (stop serve and worker first)')
    .addOption(settingOption('database'))
    .addOption(settingOption('master-key-file'))
    .addHelpText(
      'after',
      `${MASTER_KEY_NOTE}\nWith COUNTERSIGN_MASTER_KEY, pass the new key as COUNTERSIGN_NEW_MASTER_KEY; with a key file,\n` +
        'a new key replaces the file and the old one is kept beside it as .previous.',
    )
    .action(async (_options, command: Command) => {
      const flags = flagsOf(command);
      requireExistingDatabase(loadConfig(flags).database);
      const { rotateMasterKeyCommand } = await import('./rotate-master-key.js');
      done(await rotateMasterKeyCommand(flags));
    });

  const token = program
    .command('token')
    .description('create, list and revoke API tokens (works while the server runs)')
    .action(() => {
      throw new UsageError('token needs a command: create, list or revoke; see "countersign token --help"');
    });
  addHelpCommand(token);
  token
    .command('create')
    .description('issue an API token; it is printed once, alone on the last line')
    // Checked by the command, not made a required option: commander would report a missing
    // --account before a misspelt one (`--acount acme`), and hide the better message.
    .option('--account <name>', 'the account the token acts for (required)')
    .option('--create-account', 'create the account when there is none of that name')
    .option(
      '--expires-in <duration>',
      `expire the token after this long, ${formatDuration(TOKEN_EXPIRY_RANGE[0])} to ${formatDuration(TOKEN_EXPIRY_RANGE[1])} (default: never)`,
    )
    .option('--scopes <list>', `comma-separated, of ${ALL_SCOPES.join(', ')} (default: all)`)
    .addOption(settingOption('database'))
    .action(
      async (options: { account?: string; createAccount?: true; expiresIn?: string; scopes?: string }, command) => {
        const { createTokenCommand } = await import('./token.js');
        done(
          await createTokenCommand(flagsOf(command), {
            account: options.account,
            createAccount: options.createAccount === true,
            expiresIn: options.expiresIn,
            scopes: options.scopes,
          }),
        );
      },
    );
  token
    .command('list')
    .description('list the tokens: id, account, scopes, created, expires, state (never the tokens)')
    .addOption(settingOption('database'))
    .action(async (_options, command: Command) => {
      const { listTokensCommand } = await import('./token.js');
      done(await listTokensCommand(flagsOf(command)));
    });
  token
    .command('revoke')
    .description('revoke a token; the running server refuses it from its next request')
    .argument('<id>', 'the token id (tok_…, from token list)')
    .addOption(settingOption('database'))
    .action(async (id: string, _options, command: Command) => {
      const { revokeTokenCommand } = await import('./token.js');
      done(await revokeTokenCommand(flagsOf(command), id));
    });

  addApiCommands(program, done, addHelpCommand);
  addDocumentCommands(program, done, addHelpCommand);

  // Set on each command (settings copied from the parent would point at the parent): an error
  // message needs to know which command it is about.
  const withEach = (command: Command) => {
    command.exitOverride((err) => {
      throw new CliExit(err.exitCode === 0 ? 0 : 2, describeUsageError(program, command, err));
    });
    for (const sub of command.commands) withEach(sub);
  };
  withEach(program);
  return program;
}

/**
 * `help [command]`, in place of commander's: that one answers an unknown name by printing the
 * whole help to stderr; this one says which name it does not know.
 */
function addHelpCommand(parent: Command): void {
  parent
    .helpCommand(false)
    .command('help')
    .description('show the help of a command')
    .argument('[command...]', 'the command, e.g. serve or token create')
    .action((names: string[]) => {
      let target = parent;
      for (const name of names) {
        const sub = target.commands.find((c) => c.name() === name && name !== 'help');
        if (!sub) throw new UsageError(`unknown command "${names.join(' ')}"; see "${commandPath(parent)} --help"`);
        target = sub;
      }
      target.help();
    });
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/** commander's errors, in countersign's words; '' when commander has already said it (help, version). */
function describeUsageError(program: Command, command: Command, err: CommanderError): string {
  if (err.exitCode === 0) return '';
  const path = commandPath(command);
  // What the message is about: `serve`, `token create` (the program's name is in the prefix already).
  const subject = path.replace(/^countersign /, '');
  const see = `; see "${path} --help"`;
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'commander.unknownOption': {
      const similar = /\(Did you mean (?:one of )?([^?]+)\?\)/.exec(err.message)?.[1];
      return `unknown option ${quoted} for ${subject}${similar ? ` (did you mean ${similar}?)` : ''}${see}`;
    }
    case 'commander.optionMissingArgument':
      return `option ${quoted} needs a value${see}`;
    case 'commander.missingArgument': {
      const argument = command.registeredArguments.find((a) => a.name() === quoted);
      return `${subject} needs ${argument?.description || `<${quoted}>`}${see}`;
    }
    case 'commander.excessArguments': {
      const extra = command.args.slice(command.registeredArguments.length);
      const word = extra[0] ?? '';
      // `countersign bogus` reaches the default command, serve, as a stray word.
      if (command.name() === 'serve' && program.args[0] !== 'serve') {
        return program.commands.some((c) => c.name() === word)
          ? `put the command before its options: countersign ${word} [options]`
          : `unknown command "${word}"; see "countersign --help"`;
      }
      if (command.commands.length > 0) {
        const names = command.commands.map((c) => c.name()).filter((n) => n !== 'help');
        return `unknown command "${word}" for ${subject} (use ${names.join(', ')})${see}`;
      }
      return `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((e) => `"${e}"`).join(' ')} for ${subject}${see}`;
    }
    case 'commander.help':
      // Help for a command that needs a subcommand went to stderr already.
      return '';
    default:
      return err.message.replace(/^error: /, '');
  }
}
