// An endpoint's queue key: a 52-bit FNV-1a hash (two 32-bit lanes) of its key (a subscription id,
// or an account id for the account callback), stored with each delivery as deliveries.queue_key,
// which the queue index is ordered by (see store/queue/endpoints.ts). A safe integer for every
// driver; never shown. Stored values depend on it: it must never change.
export function queueKeyOf(endpoint: string): number {
  let a = 0x811c9dc5;
  let b = 0x5bd1e995;
  for (let i = 0; i < endpoint.length; i++) {
    const c = endpoint.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 13);
  }
  return (a >>> 12) * 2 ** 32 + (b >>> 0);
}
