// Maintenance transactions (retention purges, erasures) lock rows in an order of their own, beside
// the queue's transactions; PostgreSQL may then abort one of them as a deadlock victim (40P01) or,
// rarely, a serialization failure (40001). Each of those transactions is safe to run again from the
// start, so it is, a few times, after a short pause. SQLite has one writer and never needs this.

const RETRYABLE = new Set(['40P01', '40001']);
const ATTEMPTS = 4;

export async function retryConflicts<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      if (attempt >= ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt + Math.random() * 20));
    }
  }
}
