// A bounded cache that never deletes single entries: entries go into the current generation, and
// when it is full the previous generation is dropped whole and the current one takes its place.
// A hit in the previous generation moves the entry forward, so what is still used stays.
//
// Why not a least-recently-used Map (delete and re-insert on every hit, evict the oldest on every
// miss): V8 Maps under that churn keep their entries alive through young-generation GCs, so the
// keys and values of a hot cache are promoted and fill the old generation (measured; see
// delivery/slot-list.ts and docs/architecture.md). Here a hit writes nothing.

export class GenerationCache<K, V> {
  private current = new Map<K, V>();
  private previous = new Map<K, V>();

  /** Holds at most 2 × `generationSize` entries. */
  constructor(private readonly generationSize: number) {}

  get(key: K): V | undefined {
    const hit = this.current.get(key);
    if (hit !== undefined) return hit;
    const kept = this.previous.get(key);
    if (kept !== undefined) this.set(key, kept);
    return kept;
  }

  set(key: K, value: V): void {
    if (this.current.size >= this.generationSize) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, value);
  }

  clear(): void {
    this.current = new Map();
    this.previous = new Map();
  }
}
