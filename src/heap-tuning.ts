// V8 garbage-collector settings for `serve` and `worker`, set once at start-up.
//
// A delivery service allocates a steady stream of short-lived objects (a request in, a request
// out, an attempt record) and keeps little: about 30 MB is live while draining a backlog. V8's
// defaults are tuned for programs that build up data. Measured on the 1M-delivery drain
// (`node bench/run.mjs --only backlog`, docs/architecture.md):
//
// - Allocation-site pretenuring: V8 allocates objects straight in the old generation when it finds
//   most objects from the same site alive at young-generation GCs. A claim batch waiting to be
//   sent looks like that, yet dies soon after, so (as we read it) those objects die in the old
//   generation. Off, the drain used about 8 % less CPU per delivery and 25 MB less memory.
// - Heap growth: after a full GC V8 lets the old generation grow to up to four times what
//   survived before collecting again, so a 30 MB live set ran in a 115 MB old generation. At 50 %
//   growth the drain's peak RSS fell from about 248 to 188 MB, at about 4 % more CPU per delivery.
//
// Both are V8 flags that node reads at any time (the heap-size flags are not; those stay with
// NODE_OPTIONS). A flag the operator gives node themselves wins: it is not set again here.
import { setFlagsFromString } from 'node:v8';

/** The V8 flags `tuneHeap` sets for a heap growth of `growthPercent` (0: V8's own heuristic). */
export function heapFlags(growthPercent: number, givenToNode: readonly string[]): string[] {
  const given = (name: string) => givenToNode.some((arg) => arg.replace(/_/g, '-').includes(name));
  const flags: string[] = [];
  if (!given('allocation-site-pretenuring')) flags.push('--no-allocation-site-pretenuring');
  if (growthPercent > 0 && !given('heap-growing-percent')) flags.push(`--heap-growing-percent=${growthPercent}`);
  return flags;
}

/** Applies `heapFlags` to this process; returns what it set. */
export function tuneHeap(growthPercent: number): string[] {
  const givenToNode = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const flags = heapFlags(growthPercent, givenToNode);
  for (const flag of flags) setFlagsFromString(flag);
  return flags;
}
