// WAL checkpoints on a background thread. SQLite's automatic checkpoint runs inside whichever
// commit pushes the WAL past 1,000 pages, on that connection's thread: here the one event loop that
// serves the API and the dispatcher, stalled for milliseconds while pages are copied and the file
// is synced. A second connection on a worker thread checkpoints instead, PASSIVE (it never waits
// for, or blocks, a reader or writer), every CHECKPOINT_EVERY_MS. Once it has copied every frame,
// the next commit starts the WAL over from the beginning, so the file stays small.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export const CHECKPOINT_EVERY_MS = 100;

// Plain JavaScript run with `eval`, so it works the same from dist/ and from the TypeScript sources
// under test. better-sqlite3 is loaded by its resolved path: a worker's cwd can be anywhere.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
const checkpoint = db.prepare('pragma wal_checkpoint(PASSIVE)');
let timer;
const tick = () => {
  try {
    checkpoint.get();
  } catch (err) {
    // SQLITE_BUSY only means another checkpoint is running; anything else ends this thread.
    if (err && err.code !== 'SQLITE_BUSY') throw err;
  }
  timer = setTimeout(tick, workerData.everyMs);
};
tick();
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearTimeout(timer);
  try {
    checkpoint.get();
  } finally {
    db.close();
    parentPort.close();
  }
});
`;

export interface Checkpointer {
  /** Runs a last checkpoint, then ends the thread. */
  stop(): Promise<void>;
}

/**
 * Starts the checkpoint thread for the WAL database at `path`. If the thread fails, `onFailure`
 * is called (the caller turns SQLite's automatic checkpoints back on).
 */
export function startCheckpointer(path: string, onFailure: (err: Error) => void): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { path, driver, everyMs: CHECKPOINT_EVERY_MS },
    // A small heap: the thread holds one connection and one statement.
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
  });
  worker.unref();
  let stopping = false;
  worker.on('error', (err: unknown) => {
    if (!stopping) onFailure(asError(err));
  });
  worker.on('exit', (code) => {
    if (!stopping) onFailure(new Error(`the WAL checkpoint thread exited with code ${code}`));
  });
  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      // Held open while stopping: with only an unref'd worker left, Node would exit mid-await.
      worker.ref();
      let timer: NodeJS.Timeout | undefined;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 5_000);
      });
      worker.postMessage('stop');
      await Promise.race([exited, deadline]);
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}

/** An error thrown in the worker arrives cloned, often as a plain object: make it an Error again. */
function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  const text = [code, message].filter((part) => typeof part === 'string' && part !== '').join(': ');
  return Object.assign(
    new Error(`WAL checkpoint thread: ${text || 'failed'}`),
    typeof code === 'string' ? { code } : {},
  );
}
