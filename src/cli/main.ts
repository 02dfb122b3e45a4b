#!/usr/bin/env node
// `countersign <command>` (the grammar is in program.ts). Every error ends as one line on stderr,
// `countersign: …`, with exit code 2 for a usage error (an unknown option, a stray word, a bad
// value) and 1 for a failure.
import { ConfigError } from '../config.js';
import { ApiUsageError } from './api-client.js';
import { buildProgram, CliExit, UsageError } from './program.js';

async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((result) => {
    code = result;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CliExit) {
      if (err.message) process.stderr.write(`countersign: ${err.message}\n`);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`countersign: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    return err instanceof ConfigError || err instanceof UsageError || err instanceof ApiUsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  // -1: serve and worker run on until a signal ends them.
  if (code !== -1) process.exitCode = code;
});
