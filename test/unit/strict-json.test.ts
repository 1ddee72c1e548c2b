import { describe, expect, it } from 'vitest';
import { hasDuplicateKeys } from '../../src/shared/strict-json.js';

describe('hasDuplicateKeys', () => {
  it.each([
    ['flat object', '{"a":1,"b":2}'],
    ['empty object and array', '{"a":{},"b":[],"c":[{}]}'],
    ['same name in sibling objects', '{"a":{"x":1},"b":{"x":2}}'],
    ['same name at different depths', '{"x":{"x":{"x":1}}}'],
    ['array of objects with the same names', '[{"a":1,"b":2},{"a":3,"b":4}]'],
    ['strings containing braces, quotes and colons', '{"a":"}{\\"a\\":1,","b":"[{]}"}'],
    ['names that differ only by case', '{"a":1,"A":2}'],
    ['all scalar kinds and whitespace', ' { "n" : -1.5e+3 , "t" : true , "f" : false , "z" : null , "s" : "\\n\\t\\/" } '],
    ['top-level scalars', '"x"'],
    ['a name spelled like an escape but different', '{"\\\\u0061":1,"a":2}'],
  ])('accepts %s', (_name, json) => {
    expect(() => JSON.parse(json)).not.toThrow();
    expect(hasDuplicateKeys(json)).toBe(false);
  });

  it.each([
    ['top level', '{"a":1,"a":2}'],
    ['non-adjacent', '{"a":1,"b":2,"a":3}'],
    ['nested object', '{"x":{"a":1,"a":2}}'],
    ['object inside an array', '[1,{"a":1,"b":{"c":[{"d":1,"d":1}]}}]'],
    ['escaped and literal spellings of the same name', '{"a":1,"\\u0061":2}'],
    ['two escaped spellings of the same name', '{"\\u0041":1,"\\u0041":2}'],
    ['an escaped quote in both names', '{"a\\"b":1,"a\\u0022b":2}'],
    ['a surrogate pair escaped and literal', '{"\\ud83d\\ude00":1,"😀":2}'],
    ['values differing, names equal after a brace-laden string', '{"s":"{\\"a\\":1}","s":"x"}'],
  ])('detects a duplicate: %s', (_name, json) => {
    expect(() => JSON.parse(json)).not.toThrow();
    expect(hasDuplicateKeys(json)).toBe(true);
  });

  // Documented contract: invalid JSON answers true ("do not trust this text"), never throws.
  it.each([
    ['empty string', ''],
    ['truncated object', '{"a":1'],
    ['trailing comma', '{"a":1,}'],
    ['trailing text', '{"a":1} x'],
    ['single-quoted name', "{'a':1}"],
    ['unquoted name', '{a:1}'],
    ['bad escape', '{"a\\x":1}'],
    ['short unicode escape', '{"\\u00":1}'],
    ['raw control character in a string', '{"a":"\u0001"}'],
    ['leading zero', '[01]'],
    ['bare minus', '[-]'],
    ['mismatched brackets', '{"a":[1}]'],
    ['byte order mark', '\uFEFF{}'],
    ['two top-level values', '{}{}'],
  ])('treats invalid JSON as untrusted (true): %s', (_name, json) => {
    expect(() => JSON.parse(json)).toThrow();
    expect(hasDuplicateKeys(json)).toBe(true);
  });

  it('handles deep nesting without recursion', () => {
    const deep = '['.repeat(100_000) + '{"a":1,"a":2}' + ']'.repeat(100_000);
    expect(hasDuplicateKeys(deep)).toBe(true);
    expect(hasDuplicateKeys('['.repeat(100_000) + ']'.repeat(100_000))).toBe(false);
  });
});
