// `countersign serve` (API + dispatcher) and `countersign worker` (dispatcher only). Runs until
// SIGTERM or SIGINT, then shuts down gracefully. A process that cannot start (the port is taken,
// the master key does not fit the database, …) prints one line saying why and exits 1, with
// nothing left running; so does one that can no longer do its job.
import { type Flags, loadConfig } from '../config.js';
import { tuneHeap } from '../heap-tuning.js';
import { createLogger, flushLogs, resolveLogFormat } from '../logger.js';
import { start } from '../server.js';

/** Resolves -1: the process lives on until a signal ends it. */
export async function serveCommand(flags: Flags, options: { api: boolean }): Promise<number> {
  const config = loadConfig(flags);
  const log = createLogger(config.logLevel, undefined, resolveLogFormat(config.logFormat));
  const v8Flags = tuneHeap(config.heapGrowthPercent);
  if (v8Flags.length > 0) log.debug({ v8Flags }, 'heap tuned');
  const exit = (code: number, line?: string): never => {
    flushLogs();
    if (line) process.stderr.write(`countersign: ${line}\n`);
    process.exit(code);
  };
  let stopping = false;
  const shutDown = (code: number, line?: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(keepAlive);
    running?.stop().then(
      () => exit(code, line),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        exit(1, line);
      },
    );
  };
  // A worker has no listening socket, and the dispatcher's timers do not hold the event loop open
  // (nor, on SQLite, does any connection): without this, `worker` would exit right after starting.
  const keepAlive = setInterval(() => {}, 2 ** 30);
  let running: Awaited<ReturnType<typeof start>> | undefined;
  try {
    running = await start(config, log, { api: options.api, onFatal: (err) => shutDown(1, err.message) });
  } catch (err) {
    clearInterval(keepAlive);
    // start() has already stopped whatever it had started.
    return exit(1, err instanceof Error ? err.message : String(err));
  }
  const onSignal = (signal: string) => {
    log.info({ signal }, 'signal received');
    shutDown(0);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return -1;
}
