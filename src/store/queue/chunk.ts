// Small collection helpers for batched SQL: keep statements under the dialects' parameter limits.

export function chunk<T>(items: T[], size: number): T[][] {
  if (items.length <= size) return items.length === 0 ? [] : [items];
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function unique<T>(items: Iterable<T>): T[] {
  return [...new Set(items)];
}
