// A registry of short-lived items that come and go at the delivery rate (sends under way).
//
// Why not a Set: under steady churn (~128 live entries, thousands added and removed per second),
// a V8 Set or Map kept nearly every entry ever added alive through the young-generation GCs. With
// `--trace-gc-nvp`, the sender's Set made 2.6 MB of each 11 MB of young allocation survive and be
// promoted, scavenges took 6–8 ms instead of under 2, and the old generation filled with finished
// sends that only full GCs reclaimed. An array whose removed slots are overwritten keeps nothing
// it no longer holds. `docs/architecture.md` has the measurements.

export interface Slotted {
  /** Where the item sits in its list; -1 when it is in none. Owned by the list. */
  slot: number;
}

export class SlotList<T extends Slotted> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  add(item: T): void {
    if (item.slot !== -1) return;
    item.slot = this.items.length;
    this.items.push(item);
  }

  /** Removes in O(1): the last item moves into the freed slot. */
  delete(item: T): void {
    const at = item.slot;
    if (at === -1 || this.items[at] !== item) return;
    const last = this.items.pop() as T;
    if (last !== item) {
      this.items[at] = last;
      last.slot = at;
    }
    item.slot = -1;
  }

  /**
   * Calls `visit` on every item. `visit` may delete the item it is given (only that one): the walk
   * runs from the end, so the item moved into a freed slot has already been visited.
   */
  forEach(visit: (item: T) => void): void {
    for (let i = this.items.length - 1; i >= 0; i--) {
      const item = this.items[i];
      if (item !== undefined) visit(item);
    }
  }
}
