// A real pino logger (with countersign's redaction) writing into memory, so a suite can read the
// lines an operator would see.
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/logger.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;

export interface LogCapture {
  logger: Logger;
  lines(): LogLine[];
  /** The lines whose message contains `text`. */
  matching(text: string): LogLine[];
}

export function captureLogs(level = 'debug'): LogCapture {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const logger = createLogger(level, sink);
  return { logger, lines: () => lines.slice(), matching: (text) => lines.filter((l) => l.msg.includes(text)) };
}
