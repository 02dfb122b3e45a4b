// Keeps the leases of the deliveries this process holds (sending, or waiting for a slot) from
// running out while they are still in its hands. A lease is how another process knows this one
// died; it is not a bound on how long a send may take. Without renewal, a send slower than the
// lease was claimed again, by this very process too, and sent a second time while the first was
// still in flight. Only leases past half their time are renewed, so fast sends cost no query.
import type { Logger } from 'pino';
import type { ClaimedDelivery, Store } from '../store/store.js';
import { SlotList, type Slotted } from './slot-list.js';

export interface Held extends Slotted {
  delivery: ClaimedDelivery;
  /** When the claim was made (the dispatcher hands back claims that waited too long for a slot). */
  claimedAt: number;
  /** When the lease runs out, as last set in the database. */
  leaseUntil: number;
}

export class LeaseKeeper {
  private readonly held = new SlotList<Held>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;

  constructor(
    private readonly store: Store,
    private readonly owner: string,
    private readonly leaseMs: number,
    private readonly log: Pick<Logger, 'warn'>,
  ) {}

  get size(): number {
    return this.held.size;
  }

  hold(item: Held): void {
    this.held.add(item);
  }

  drop(item: Held): void {
    this.held.delete(item);
  }

  start(): void {
    // Every quarter lease: a lease is renewed once half of it has gone, with a quarter to spare.
    this.timer ??= setInterval(() => void this.renew(), Math.max(50, Math.floor(this.leaseMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Renews every held lease with less than half of it left. Exposed for tests. */
  async renew(now = Date.now()): Promise<void> {
    if (this.renewing) return;
    const due: Held[] = [];
    const threshold = now + this.leaseMs / 2;
    this.held.forEach((item) => {
      if (item.leaseUntil < threshold) due.push(item);
    });
    if (due.length === 0) return;
    this.renewing = true;
    try {
      await this.store.renewLeases(
        this.owner,
        due.map((item) => item.delivery.id),
        now,
        this.leaseMs,
      );
      for (const item of due) item.leaseUntil = now + this.leaseMs;
    } catch (err) {
      this.log.warn(
        { err, deliveries: due.length },
        'could not renew the leases of deliveries in flight; if this lasts past the lease, another process may send them again',
      );
    } finally {
      this.renewing = false;
    }
  }
}
