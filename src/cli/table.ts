import { escapeControls } from '../shared/text.js';

/**
 * One value as a table cell: `-` for nothing, lists comma-joined, and control characters shown as
 * `\uXXXX` escapes, never sent raw: a value may come from a caller (an audit event's claimed
 * client id), and a newline or an escape sequence would forge rows or drive the terminal.
 */
export function cell(v: unknown): string {
  return escapeControls(v === null || v === undefined ? '-' : Array.isArray(v) ? v.join(',') || '-' : String(v));
}

/** Renders rows as an aligned plain-text table with the given columns (header in upper case). */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const head = columns.map((c) => c.toUpperCase());
  const body = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

/** Renders one object as `key: value` lines. */
export function record(obj: Record<string, unknown>, keys: string[] = Object.keys(obj)): string {
  const width = Math.max(...keys.map((k) => k.length));
  return keys
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${k.padEnd(width)}  ${Array.isArray(obj[k]) ? (obj[k] as unknown[]).join(',') : String(obj[k] ?? '-')}`)
    .join('\n');
}
