#!/usr/bin/env node
// `countersign <command>`: one file per command in this folder; this file only dispatches.
import { parseArgs } from 'node:util';
import { VERSION } from '../version.js';
import { migrateCommand } from './migrate.js';
import { rotateMasterKeyCommand } from './rotate-master-key.js';
import { serveCommand } from './serve.js';
import { tokenCommand } from './token.js';

const HELP = `countersign ${VERSION}: webhook delivery for e-signature events

Usage: countersign <command> [options]

Commands:
  serve                     HTTP API and dispatcher (the default)
  worker                    dispatcher only, for scale-out on PostgreSQL
  migrate                   apply database migrations and exit
  rotate-master-key         re-seal every secret at rest under a new master key (service stopped)
  token create --account NAME [--expires-in 30d] [--scopes read,write,publish,admin]
  token list
  token revoke ID

Common options (each also read from the environment):
  --database URL            DATABASE_URL: a file path or sqlite: URL (SQLite), or postgres://
  --port N                  PORT (serve), default 8080
  --host H                  HOST (serve), default 0.0.0.0
  --metrics-port N          COUNTERSIGN_METRICS_PORT (worker): /healthz, /readyz and /metrics on HOST:N
  --allow-insecure-targets  COUNTERSIGN_ALLOW_INSECURE_TARGETS: allow http and private hosts
  --allowed-target-cidrs L  COUNTERSIGN_ALLOWED_TARGET_CIDRS: internal CIDRs the SSRF guard lets through
  --no-dispatcher           COUNTERSIGN_NO_DISPATCHER: serve the API only
  --log-level L             LOG_LEVEL, default info
See the README for every setting.
`;

export const COMMON_OPTIONS = {
  database: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'metrics-port': { type: 'string' },
  'allow-insecure-targets': { type: 'boolean' },
  'allowed-target-cidrs': { type: 'string' },
  'no-dispatcher': { type: 'boolean' },
  'log-level': { type: 'string' },
  'master-key-file': { type: 'string' },
  'retry-schedule': { type: 'string' },
  'rate-limit': { type: 'string' },
  account: { type: 'string' },
  'expires-in': { type: 'string' },
  scopes: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: COMMON_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const [command = 'serve', ...rest] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  switch (command) {
    case 'serve':
      return serveCommand(values, { api: true });
    case 'worker':
      return serveCommand(values, { api: false });
    case 'migrate':
      return migrateCommand(values);
    case 'rotate-master-key':
      return rotateMasterKeyCommand(values);
    case 'token':
      return tokenCommand(values, rest);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`countersign: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
