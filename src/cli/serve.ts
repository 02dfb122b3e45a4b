// `countersign serve` (API + dispatcher) and `countersign worker` (dispatcher only). Runs until
// SIGTERM or SIGINT, then shuts down gracefully.
import { type Flags, loadConfig } from '../config.js';
import { tuneHeap } from '../heap-tuning.js';
import { createLogger } from '../logger.js';
import { start } from '../server.js';

/** Resolves -1: the process lives on until a signal ends it. */
export async function serveCommand(flags: Flags, options: { api: boolean }): Promise<number> {
  const config = loadConfig(flags);
  const log = createLogger(config.logLevel);
  const v8Flags = tuneHeap(config.heapGrowthPercent);
  if (v8Flags.length > 0) log.debug({ v8Flags }, 'heap tuned');
  const running = await start(config, log, { api: options.api });
  // A worker has no listening socket, and the dispatcher's timers do not hold the event loop open
  // (nor, on SQLite, does any connection): without this, `worker` would exit right after starting.
  const keepAlive = setInterval(() => {}, 2 ** 30);
  const onSignal = (signal: string) => {
    log.info({ signal }, 'signal received');
    clearInterval(keepAlive);
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return -1;
}
