/**
 * Strict JSON helpers for security-sensitive inputs (JOSE headers, JWT claim sets).
 *
 * `JSON.parse` silently keeps the last of several members with the same name, so two parsers
 * (ours and an upstream one) can disagree about what a signed object says. RFC 7515 §4 and
 * RFC 7519 §4 let a recipient reject such input, and we do.
 */

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const LITERAL = /true|false|null/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/**
 * Whether `json` has an object with two members of the same name, compared after unescaping
 * (so `"a"` and `"\u0061"` are the same name), at any depth.
 *
 * **Invalid JSON returns `true`**: the answer means "do not trust this text", so callers can
 * refuse on `true` without parsing first. Callers that want to tell the two apart should run
 * `JSON.parse` first. Never throws; uses no recursion, so deep nesting cannot overflow the stack.
 */
export function hasDuplicateKeys(json: string): boolean {
  let i = 0;
  const n = json.length;
  // One entry per open container: the member names seen so far for an object, null for an array.
  const stack: (Set<string> | null)[] = [];

  const skipWs = () => {
    while (i < n && (json[i] === ' ' || json[i] === '\t' || json[i] === '\n' || json[i] === '\r')) i++;
  };
  /** Reads a string starting at `"`, returning its unescaped value or undefined if invalid. */
  const readString = (): string | undefined => {
    if (json[i] !== '"') return undefined;
    i++;
    let out = '';
    while (i < n) {
      const c = json[i]!;
      if (c === '"') {
        i++;
        return out;
      }
      if (c.charCodeAt(0) < 0x20) return undefined;
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = json[i + 1];
      if (e === 'u') {
        const hex = json.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return undefined;
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
      } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        i += 2;
      } else return undefined;
    }
    return undefined;
  };
  const match = (re: RegExp): boolean => {
    re.lastIndex = i;
    if (!re.test(json)) return false;
    i = re.lastIndex;
    return true;
  };

  let mode: 'value' | 'key' | 'after' = 'value';
  skipWs();
  for (;;) {
    if (mode === 'key') {
      const key = readString();
      const names = stack.at(-1)!;
      if (key === undefined) return true;
      if (names.has(key)) return true;
      names.add(key);
      skipWs();
      if (json[i] !== ':') return true;
      i++;
      skipWs();
      mode = 'value';
    } else if (mode === 'value') {
      const c = json[i];
      if (c === '{' || c === '[') {
        i++;
        skipWs();
        if (json[i] === (c === '{' ? '}' : ']')) {
          i++;
          mode = 'after';
        } else {
          stack.push(c === '{' ? new Set() : null);
          mode = c === '{' ? 'key' : 'value';
        }
      } else if (c === '"') {
        if (readString() === undefined) return true;
        mode = 'after';
      } else if (match(NUMBER) || match(LITERAL)) {
        mode = 'after';
      } else return true;
    } else {
      skipWs();
      if (stack.length === 0) return i !== n; // trailing text is invalid JSON
      const top = stack.at(-1)!;
      const c = json[i];
      if (c === ',') {
        i++;
        skipWs();
        mode = top ? 'key' : 'value';
      } else if (c === (top ? '}' : ']')) {
        i++;
        stack.pop();
      } else return true;
    }
  }
}
