// WAL checkpoints on a background thread. SQLite's automatic checkpoint runs inside whichever
// commit pushes the WAL past 1,000 pages, on that connection's thread: here the one event loop that
// serves the API and the dispatcher, stalled for milliseconds while pages are copied and the file
// is synced. A second connection on a worker thread checkpoints instead, PASSIVE (it never waits
// for, or blocks, a reader or writer), every CHECKPOINT_EVERY_MS.
//
// A checkpoint alone does not bound the WAL. SQLite starts the WAL over only when a write
// transaction begins while every frame has been copied back; under steady writes (one commit a
// millisecond at 1,000 events/s) some commit always lands between a checkpoint's start and the
// next transaction, so the file grew by every commit: 500 MB in 15 s of that load. So once the WAL
// holds RESTART_AT_FRAMES frames, the writer asks (`beforeWrite`): its next write transaction waits
// while the thread copies the last few frames (those since its previous round), and then begins on
// a fully copied WAL and starts it over. The event loop is never blocked; only that one write waits.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export const CHECKPOINT_EVERY_MS = 100;
/** 8,192 frames: 32 MiB of 4 KiB pages. */
export const RESTART_AT_FRAMES = 8_192;

/** How long a write waits at most for the thread to catch up. */
const CATCH_UP_LIMIT_MS = 1_000;

/** Shared with the thread: frames in the WAL and rounds run, as of its last checkpoint. */
const WAL_FRAMES = 0;
const ROUNDS = 1;

// Plain JavaScript run with `eval`, so it works the same from dist/ and from the TypeScript sources
// under test. better-sqlite3 is loaded by its resolved path: a worker's cwd can be anywhere.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
const checkpoint = db.prepare('pragma wal_checkpoint(PASSIVE)');
const { state: buffer, walFramesSlot, roundsSlot } = workerData;
const state = new Int32Array(buffer);
let timer;
const round = () => {
  try {
    const { log } = checkpoint.get();
    Atomics.store(state, walFramesSlot, log);
  } catch (err) {
    // SQLITE_BUSY only means another checkpoint is running; anything else ends this thread.
    if (err && err.code !== 'SQLITE_BUSY') throw err;
  }
  Atomics.add(state, roundsSlot, 1);
};
const tick = () => {
  round();
  timer = setTimeout(tick, workerData.everyMs);
};
tick();
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
// VACUUM, then a TRUNCATE checkpoint: see rewrite.ts. The main thread holds its connection idle meanwhile.
const rebuild = () => {
  try {
    db.pragma('temp_store = file');
    db.exec('vacuum');
  } catch (err) {
    return 'the SQLite file could not be rebuilt: ' + err.message + '; erase again to retry';
  }
  for (let attempt = 1; attempt <= 10; attempt++) {
    if (db.pragma('wal_checkpoint(truncate)')[0].busy === 0) return null;
    pause(50 * attempt);
  }
  return 'the SQLite WAL could not be truncated (another connection kept reading); old copies may remain in the -wal file until it is: erase again later';
};
parentPort.on('message', (message) => {
  if (message === 'rebuild') {
    clearTimeout(timer);
    const problem = rebuild();
    Atomics.store(state, walFramesSlot, 0);
    parentPort.postMessage({ rebuilt: true, problem });
    timer = setTimeout(tick, workerData.everyMs);
    return;
  }
  if (message === 'catch-up') {
    clearTimeout(timer);
    round();
    parentPort.postMessage('caught-up');
    timer = setTimeout(tick, workerData.everyMs);
    return;
  }
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
  /**
   * Called before each write transaction. Undefined while the WAL is small; once it has reached
   * RESTART_AT_FRAMES, a promise that the write must wait for: it resolves once `idle` has resolved
   * (no transaction of ours under way) and the thread has copied every frame, so the write that
   * follows starts the WAL over. Every caller in the meantime gets the same promise.
   */
  beforeWrite(idle: () => Promise<void>): Promise<void> | undefined;
  /**
   * Rebuilds the file (VACUUM) and truncates the WAL on the thread, off the event loop. `hold` runs
   * its callback while no query of ours can use the main connection (Kysely's connection mutex): a
   * write of ours meanwhile would wait for the thread's lock inside SQLite, blocking the event loop;
   * our queries wait for the mutex instead. Resolves with what could not be done, if anything.
   */
  rebuild(hold: (run: () => Promise<string | undefined>) => Promise<string | undefined>): Promise<string | undefined>;
  /** Whether the thread still works. */
  working(): boolean;
  /** Runs a last checkpoint, then ends the thread. */
  stop(): Promise<void>;
}

/**
 * Starts the checkpoint thread for the WAL database at `path`. If the thread fails, `onFailure`
 * is called (the caller turns SQLite's automatic checkpoints back on).
 */
export function startCheckpointer(path: string, onFailure: (err: Error) => void): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const state = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      path,
      driver,
      everyMs: CHECKPOINT_EVERY_MS,
      state: state.buffer,
      walFramesSlot: WAL_FRAMES,
      roundsSlot: ROUNDS,
    },
    // A small heap: the thread holds one connection and one statement.
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
  });
  worker.unref();
  let stopping = false;
  let failed = false;
  let gate: Promise<void> | undefined;
  let caughtUp: (() => void) | undefined;
  /** The thread's round count when the last catch-up ended: its WAL size is stale until the next. */
  let roundsAtCatchUp = -1;
  let rebuilt: ((problem: string | undefined) => void) | undefined;
  worker.on('message', (message: unknown) => {
    if (message === 'caught-up') caughtUp?.();
    else if (typeof message === 'object' && message !== null && 'rebuilt' in message) {
      const { problem } = message as unknown as { problem: string | null };
      rebuilt?.(problem ?? undefined);
    }
  });
  const threadGone = 'the SQLite file could not be rebuilt: its thread stopped; erase again to retry';
  worker.on('error', (err: unknown) => {
    failed = true;
    caughtUp?.();
    rebuilt?.(threadGone);
    if (!stopping) onFailure(asError(err));
  });
  worker.on('exit', (code) => {
    failed = true;
    caughtUp?.();
    rebuilt?.(threadGone);
    if (!stopping) onFailure(new Error(`the WAL checkpoint thread exited with code ${code}`));
  });
  const catchUp = async (idle: () => Promise<void>): Promise<void> => {
    await idle();
    if (failed || stopping) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      caughtUp = resolve;
      // A thread that never answers must not hold writes up for long.
      timer = setTimeout(resolve, CATCH_UP_LIMIT_MS);
      worker.postMessage('catch-up');
    });
    clearTimeout(timer);
    caughtUp = undefined;
    roundsAtCatchUp = Atomics.load(state, ROUNDS);
  };
  return {
    beforeWrite(idle) {
      if (gate || failed || stopping) return gate;
      if (Atomics.load(state, WAL_FRAMES) < RESTART_AT_FRAMES || Atomics.load(state, ROUNDS) <= roundsAtCatchUp) {
        return undefined;
      }
      gate = catchUp(idle).finally(() => {
        gate = undefined;
      });
      return gate;
    },
    working() {
      return !failed && !stopping;
    },
    async rebuild(hold) {
      // A catch-up under way waits for the connection itself: let it finish first.
      await gate;
      return hold(async () => {
        if (failed || stopping) return threadGone;
        const problem = await new Promise<string | undefined>((resolve) => {
          rebuilt = resolve;
          worker.postMessage('rebuild');
        });
        rebuilt = undefined;
        return problem;
      });
    },
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
