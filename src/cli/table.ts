// Output of the API commands: aligned columns for people, the API's JSON for scripts (--json).

/** Columns padded to the widest cell; a header row first. Empty cells show as "-". */
export function formatTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((row) =>
    row.map((cell) => (cell === null || cell === undefined || cell === '' ? '-' : String(cell))),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...cells.map(line)].join('\n')}\n`;
}

/** `key: value` lines, keys aligned. */
export function formatFacts(facts: [string, string | number | boolean | null | undefined][]): string {
  const width = Math.max(...facts.map(([k]) => k.length));
  return `${facts.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v === null || v === undefined || v === '' ? '-' : String(v)}`).join('\n')}\n`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
