// The parent's side of the receiver process: start it, arm it for a measurement, wait (bounded)
// until every expected delivery is in, with a progress line every few seconds.
import { fileURLToPath } from 'node:url';
import { forkScript, lastWords, nextMessage } from './processes.mjs';

const RECEIVER = fileURLToPath(new URL('../receiver.mjs', import.meta.url));

/** Above this many expected deliveries the receiver counts requests instead of distinct ones. */
const UNIQUE_LIMIT = 300_000;

export async function startReceiver() {
  const child = forkScript(RECEIVER, [], { name: 'receiver' });
  const { port } = await nextMessage(child, 'ready', 15_000);

  async function stats() {
    const reply = nextMessage(child, 'stats', 10_000);
    child.send({ cmd: 'stats' });
    return (await reply).summary;
  }

  return {
    port,
    pid: child.pid,
    origin: `http://127.0.0.1:${port}`,
    stats,
    /**
     * Starts a measurement of `expected` deliveries. The returned `wait` resolves with the
     * receiver's summary once they are all in, or after `timeoutMs` with what arrived (`timedOut`).
     */
    async arm({ expected, latency = false, windowsMs }) {
      const armed = nextMessage(child, 'armed', 10_000);
      child.send({ cmd: 'arm', expected, latency, windowsMs, unique: expected <= UNIQUE_LIMIT });
      await armed;
      let onDone;
      const done = new Promise((resolve) => {
        onDone = (message) => {
          if (message?.type === 'done') resolve(message.summary);
        };
        child.on('message', onDone);
      });
      return {
        /** Lowers the count to wait for, when fewer were sent than armed for. */
        expect(count) {
          child.send({ cmd: 'expect', expected: count });
        },
        async wait({ timeoutMs, progress, everyMs = 5_000 }) {
          const deadline = Date.now() + timeoutMs;
          try {
            while (true) {
              const left = deadline - Date.now();
              if (left <= 0) return { ...(await stats()), timedOut: true };
              let timer;
              const tick = new Promise((resolve) => {
                timer = setTimeout(resolve, Math.min(everyMs, left), undefined);
              });
              const summary = await Promise.race([done, tick]);
              clearTimeout(timer);
              if (summary) return { ...summary, timedOut: false };
              if (child.exitCode !== null) throw new Error(`the receiver exited ${lastWords(child)}`);
              if (progress && Date.now() < deadline) progress(await stats());
            }
          } finally {
            child.off('message', onDone);
          }
        },
      };
    },
    async close() {
      if (child.exitCode === null && child.connected) child.send({ cmd: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await child.exited;
      clearTimeout(timer);
    },
  };
}
