/**
 * Control characters (C0, DEL, C1) shown as `\uXXXX` escapes. For text that came from a caller and
 * is stored or printed for operators: a newline or an escape sequence in it would forge lines of
 * a log or a table, or drive the terminal that shows it.
 */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
