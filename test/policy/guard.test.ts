import { describe, expect, it } from 'vitest';
import { compilePolicy, InvalidPolicy } from '../../src/policy/compile.js';
import { preparePolicySet, type PolicyRequest } from '../../src/policy/evaluate.js';
import { MAX_EXPRESSION_DEPTH, MAX_NESTING, policyShapeProblems } from '../../src/policy/guard.js';
import { CRASH_SHAPES } from './crash-shapes.js';
// The bench's tenant policy, the one the `policy` workload measures: realistic, and the guard must pass it.
import { BENCH_POLICY } from '../../bench/targets/common.mjs';

/**
 * The guard in front of Cedar (src/policy/guard.ts): policy texts deep enough to break the
 * process's one cedar-wasm instance are refused before Cedar sees them, with a located 400 like
 * Cedar's own; realistic policies, and policies just inside the bounds, still compile and decide.
 *
 * Nothing here hands Cedar a text that could break it: the crash shapes are checked against the
 * guard alone (the same texts go through compilePolicy in a child process, ./guard.child.test.ts),
 * and the compilePolicy tests use texts just over a bound, which Cedar itself survives, so that a
 * missing rule fails the test rather than the test process.
 */
const W = (e: string) => `permit(principal, action, resource) when { ${e} };`;
const parens = (n: number) => W(`${'('.repeat(n)}true${')'.repeat(n)}`);
const plus = (n: number) => W(`context.ttl${' + 1'.repeat(n)} > 0`);

function refusal(text: string): InvalidPolicy {
  try {
    compilePolicy(text);
  } catch (err) {
    if (err instanceof InvalidPolicy) return err;
    throw err;
  }
  throw new Error('expected the policy to be refused');
}

const issue = (): PolicyRequest => ({
  tenantId: 'acme',
  action: 'issue',
  principal: { type: 'Client', id: 'svc', tenants: ['acme'] },
  resource: { uri: 'https://tickets.acme.example', tenantId: 'acme' },
  context: { scopes: ['tickets:read'], ttl: 300, dpop: false, actorChain: [], time: 1_800_000_000, ttlCap: 300 },
});
const decide = (text: string) => preparePolicySet(compilePolicy(text)).decide(issue());

describe('guard: every shape that breaks cedar-wasm is refused before Cedar sees it', () => {
  it.each(CRASH_SHAPES.map((s) => [s.name, s.phase, s.text] as const))('%s (breaks Cedar at %s)', (_name, _phase, text) => {
    const problems = policyShapeProblems(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/nested too deeply/);
    expect(problems[0]!.location).toMatchObject({ line: 1, column: expect.any(Number) });
  });
});

describe('guard: the bounds', () => {
  it(`brackets: ${MAX_NESTING} levels compile and decide; one more is refused with its location`, () => {
    // `when { ... }` is the first level.
    expect(decide(parens(MAX_NESTING - 1)).effect).toBe('allow');
    const text = parens(MAX_NESTING);
    const e = refusal(text);
    expect(e.status).toBe(400);
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0]!.message).toBe(`brackets are nested too deeply (more than ${MAX_NESTING} levels of (, [ and {)`);
    const at = text.indexOf('(', text.indexOf('{')) + MAX_NESTING - 1;
    expect(e.problems[0]!.location).toEqual({ start: at, end: at + 1, line: 1, column: at + 1 });
    expect(e.toJSON()).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/^invalid policy: brackets are nested too deeply .* at line 1, column \d+$/) });
  });

  it.each([
    ['[', ']', (n: number) => W(`${'['.repeat(n)}true${']'.repeat(n)}.isEmpty()`)],
    ['{a:', '}', (n: number) => W(`${'{a:'.repeat(n)}true${'}'.repeat(n)} has a`)],
  ])('brackets: %s counts like (', (_o, _c, text) => {
    expect(policyShapeProblems(text(MAX_NESTING - 1))).toEqual([]);
    expect(policyShapeProblems(text(MAX_NESTING))[0]!.message).toMatch(/brackets are nested too deeply/);
  });

  it(`expression depth: a + chain just inside ${MAX_EXPRESSION_DEPTH} compiles and decides; one more link is refused`, () => {
    // Found with the guard alone, capped far below where Cedar breaks (~362 links): Cedar only
    // ever sees a chain the guard accepts.
    let n = 1;
    while (n < 200 && policyShapeProblems(plus(n + 1)).length === 0) n++;
    expect(n).toBeGreaterThan(100);
    expect(n).toBeLessThan(200);
    expect(decide(plus(n)).effect).toBe('allow');
    const e = refusal(plus(n + 1));
    expect(e.problems[0]!.message).toBe(`this expression is nested too deeply (more than ${MAX_EXPRESSION_DEPTH} levels of operators, calls and brackets)`);
    expect(e.problems[0]!.help).toMatch(/set/);
    expect(e.problems[0]!.location!.line).toBe(1);
  });

  it.each([
    ['&&', (n: number) => W(`context.dpop${' && context.dpop'.repeat(n)}`)],
    ['||', (n: number) => W(`context.dpop${' || context.dpop'.repeat(n)}`)],
    ['if-then-else', (n: number) => W(`${'if context.dpop then '.repeat(n)}true${' else false'.repeat(n)}`)],
    ['.attr', (n: number) => W(`context${'.a'.repeat(n)}`)],
    ['.method()', (n: number) => W(`context.scopes${'.isEmpty()'.repeat(n)}`)],
    ['when clauses', (n: number) => `permit(principal, action, resource)${' when { true }'.repeat(n)};`],
  ])('expression depth: a chain of %s is bounded too', (_op, text) => {
    expect(policyShapeProblems(text(20))).toEqual([]);
    expect(policyShapeProblems(text(400))[0]!.message).toMatch(/expression is nested too deeply/);
  });

  it('elements of a set, a record or a call, and separate policies, do not add up', () => {
    const set = W(`context.scopes.containsAny([${Array.from({ length: 300 }, (_, i) => `"s${i}"`).join(', ')}])`);
    expect(decide(set).effect).toBe('deny');
    const nested = W(`[${Array.from({ length: 300 }, (_, i) => `[${i}]`).join(', ')}].contains([1])`);
    expect(policyShapeProblems(nested)).toEqual([]);
    const many = Array.from({ length: 200 }, (_, i) => `@id("p${i}") permit(principal, action, resource) when { context.ttl + ${i} > 0 && context.dpop || context.scopes.contains("x") };`).join('\n');
    expect(Object.keys(compilePolicy(many).policies)).toHaveLength(200);
  });
});

describe('guard: realistic policies are untouched', () => {
  const TEN_LEVELS = W(
    '((((((((context.scopes.contains("tickets:read") && (context.ttl < 3600 || (context.dpop && [context.ttl].contains(300)))) || !context.dpop))))))) && (principal in context.tenant)',
  );
  const ALTERNATIVES = W(Array.from({ length: 40 }, (_, i) => `principal == Client::"client-${i}"`).join(' || '));

  it.each([
    ['the DESIGN example', 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };', 'allow'],
    ['the bench policy', BENCH_POLICY, 'deny'],
    ['10 levels of nesting', TEN_LEVELS, 'allow'],
    ['40 alternatives joined by ||', ALTERNATIVES, 'deny'],
  ])('%s compiles and decides', (_name, text, effect) => {
    expect(policyShapeProblems(text)).toEqual([]);
    expect(decide(text).effect).toBe(effect);
  });
});

describe('guard: its lexer skips string literals and comments exactly', () => {
  const deep = '('.repeat(200);

  it('brackets inside a string are not nesting', () => {
    expect(decide(W(`context.scopes.contains("${deep}")`)).effect).toBe('deny');
  });

  it('an escaped quote does not end the string; an escaped backslash does not hide the quote after it', () => {
    expect(policyShapeProblems(W(`context.scopes.contains("\\" ${deep}")`))).toEqual([]);
    const hidden = W(`context.scopes.contains("\\\\") || ${'('.repeat(40)}true${')'.repeat(40)}`);
    expect(policyShapeProblems(hidden)[0]!.message).toMatch(/nested too deeply/);
  });

  it('brackets inside a // comment are not nesting; CRLF texts compile', () => {
    expect(decide(`// ${deep}\r\npermit(principal, action, resource); // ${deep}`).effect).toBe('allow');
  });

  it('a quote inside a comment does not start a string', () => {
    const text = `// a "quote\npermit(principal, action, resource) when { ${'('.repeat(40)}true${')'.repeat(40)} }; // "`;
    expect(policyShapeProblems(text)[0]!.message).toMatch(/nested too deeply/);
  });

  it.each([
    ['\\r', '\r'],
    ['\\u2028', '\u2028'],
  ])('a comment ends at any line break (%s), so it never hides code Cedar may read', (_n, brk) => {
    const text = `// x${brk}permit(principal, action, resource) when { ${'('.repeat(40)}true${')'.repeat(40)} };`;
    expect(policyShapeProblems(text)[0]!.message).toMatch(/nested too deeply/);
  });

  it('a string that does not end, or a backslash before a line break, is refused with its location', () => {
    const open = `permit(principal, action, resource) when {\n  context.scopes.contains("${deep}) };`;
    expect(policyShapeProblems(open)).toEqual([{ message: 'unterminated string literal', location: { start: open.indexOf('"'), end: open.length, line: 2, column: 27 } }]);
    const escaped = `permit(principal, action, resource) when { context.scopes.contains("a\\\n${deep}") };`;
    expect(policyShapeProblems(escaped)[0]!.message).toMatch(/invalid escape/);
    expect(refusal(escaped).status).toBe(400);
  });

  it('locations count lines and columns like Cedar (1-based)', () => {
    const text = `permit(principal, action, resource);\n\n  permit(principal, action, resource) when {${'('.repeat(MAX_NESTING)} true ${')'.repeat(MAX_NESTING)}};`;
    const loc = policyShapeProblems(text)[0]!.location!;
    expect(loc.line).toBe(3);
    expect(text.slice(loc.start, loc.end)).toBe('(');
    expect(loc.column).toBe(loc.start - text.lastIndexOf('\n', loc.start));
  });
});
