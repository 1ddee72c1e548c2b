import type { PolicyLocation, PolicyProblem } from './compile.js';

/**
 * A lexer-level check of a policy text's shape, run before Cedar ever sees the text.
 *
 * Why: cedar-wasm runs in one WebAssembly instance per process, and a deep enough expression
 * overflows its stack (while parsing, or later while evaluating), which leaves the instance
 * answering every later call with "memory access out of bounds": one tenant admin could stop
 * issuance for every tenant. Measured on cedar-wasm 4.13 (each shape in a fresh process):
 *
 * - nested brackets crash the parser: ~130 `(`, ~126 `[`, ~118 `{a:` records, 41 `([{a:` triples
 *   (under 400 bytes); nested set literals crash evaluation at ~125;
 * - chains that nest without brackets parse but crash evaluation at ~362 links: `+`, `-`, `*`,
 *   `&&` of method calls, `.attr`, `["attr"]`, `.method()`, `if ... then ... else` nested in
 *   its branches;
 * - runs of unary `!`/`-` and chains of relational operators are refused by Cedar itself;
 *   huge strings, many policies, wide sets and records, long namespaces do not crash.
 *
 * So a text is refused, with a location like Cedar's own errors, when:
 *
 * - brackets (`(`, `[`, `{`) nest deeper than {@link MAX_NESTING} (a quarter of the parser's limit);
 * - an expression is deeper than {@link MAX_EXPRESSION_DEPTH} (about a third of the evaluator's
 *   limit), estimated from above: per bracket level, every `&&`, `||`, `+`, `-`, `*`, `!`,
 *   `if`, `when`, `unless` counts (each may put everything after it one level deeper), plus the
 *   longest run of postfix and relational steps (`.x`, `[..]`, `(..)`, `==`, `in`, `has`, ...)
 *   between two of those, plus the deepest bracket inside, each bracket counting 3 in all;
 *   elements separated by `,` (sets, records, arguments) and policies (`;`) are independent.
 *
 * String literals and `//` comments are skipped: a `(` in either is not nesting. A comment ends
 * at any line break (`\n`, `\r`, ...) and a `\` in a string escapes the next character, as in
 * Cedar; a string that does not end, or a `\` before a line break, is refused here (Cedar refuses
 * both too), so this lexer never sees less code than Cedar does.
 */
export const MAX_NESTING = 32;
export const MAX_EXPRESSION_DEPTH = 128;
/**
 * What one bracket level costs in {@link MAX_EXPRESSION_DEPTH} besides the step it is (a nested
 * set literal costs Cedar's evaluator about 3 chain links: ~125 levels against ~362 links).
 */
const BRACKET_COST = 2;

const LINE_BREAK = /[\n\r\u000b\u000c\u0085\u2028\u2029]/;
const OPEN = new Set(['(', '[', '{']);
const CLOSE: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
/** Tokens after which the rest of the level may sit one level deeper in Cedar's tree. */
const CHAIN_OPS = new Set(['&&', '||', '+', '-', '*', '!', 'if', 'when', 'unless']);
/** Steps that deepen only the operand they are in. */
const STEP_OPS = new Set(['.', '==', '!=', '<', '<=', '>', '>=', 'in', 'has', 'like', 'is']);

interface Frame {
  at: number;
  /** Chain operators so far in the current element (see the module comment). */
  chain: number;
  /** The current run of steps, and the longest in the current element. */
  run: number;
  maxRun: number;
  /** The deepest bracket closed in the current element, with its cost. */
  maxChild: number;
  /** The deepest element before the last `,` (elements of a set, record, call or scope are independent). */
  done: number;
}

const newFrame = (at: number): Frame => ({ at, chain: 0, run: 0, maxRun: 0, maxChild: 0, done: 0 });
const depthOf = (f: Frame) => Math.max(f.done, f.chain + f.maxRun + f.maxChild);

function location(text: string, start: number, end: number): PolicyLocation {
  const before = text.slice(0, start);
  const line = before.split('\n').length;
  return { start, end, line, column: start - before.lastIndexOf('\n') };
}

/** Where a word or symbol starts a token of interest. */
const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;

/**
 * The problems with a policy text's shape (empty when it may go to Cedar). Only the first
 * problem is reported: the text is refused either way.
 */
export function policyShapeProblems(text: string): PolicyProblem[] {
  const problem = (message: string, start: number, end: number, help?: string): PolicyProblem[] => [
    { message, ...(help ? { help } : {}), location: location(text, start, end) },
  ];
  const stack: Frame[] = [newFrame(0)];
  const top = () => stack[stack.length - 1]!;
  const chainOp = () => {
    const f = top();
    f.chain += 1;
    f.run = 0;
  };
  const stepOp = () => {
    const f = top();
    f.run += 1;
    f.maxRun = Math.max(f.maxRun, f.run);
  };
  const n = text.length;
  let i = 0;
  while (i < n) {
    const at = i;
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '/') {
      while (i < n && !LINE_BREAK.test(text[i]!)) i++;
      continue;
    }
    if (c === '"') {
      for (i++; ; ) {
        if (i >= n) return problem('unterminated string literal', at, n);
        const s = text[i]!;
        if (s === '"') break;
        if (s === '\\') {
          if (i + 1 >= n || LINE_BREAK.test(text[i + 1]!)) {
            return problem('invalid escape in a string literal: `\\` before a line break or at the end of the text', i, i + 1);
          }
          i += 2;
        } else i++;
      }
      i++;
      continue;
    }
    WORD.lastIndex = i;
    const word = WORD.exec(text)?.[0];
    if (word !== undefined) {
      i += word.length;
      if (CHAIN_OPS.has(word)) chainOp();
      else if (STEP_OPS.has(word)) stepOp();
    } else if (OPEN.has(c)) {
      stepOp(); // a call, an index or a literal: one more step of the operand it is in
      if (stack.length > MAX_NESTING) {
        return problem(`brackets are nested too deeply (more than ${MAX_NESTING} levels of (, [ and {)`, at, at + 1, 'split the policy into several policies or `when` clauses');
      }
      stack.push(newFrame(at));
      i++;
    } else if (c in CLOSE) {
      // An unbalanced bracket is Cedar's to report: the outermost frame stays.
      if (stack.length > 1) {
        const closed = stack.pop()!;
        top().maxChild = Math.max(top().maxChild, BRACKET_COST + depthOf(closed));
      }
      i++;
    } else if (c === ',' || (c === ';' && stack.length === 1)) {
      // The next element of a set, record, call or scope, or the next policy: independent of this one.
      const f = top();
      stack[stack.length - 1] = { ...newFrame(f.at), done: depthOf(f) };
      i++;
    } else {
      const two = text.slice(i, i + 2);
      if (CHAIN_OPS.has(two) || STEP_OPS.has(two)) {
        if (CHAIN_OPS.has(two)) chainOp();
        else stepOp();
        i += 2;
      } else {
        if (CHAIN_OPS.has(c)) chainOp();
        else if (STEP_OPS.has(c)) stepOp();
        i++;
      }
    }
    if (depthOf(top()) > MAX_EXPRESSION_DEPTH) {
      return problem(
        `this expression is nested too deeply (more than ${MAX_EXPRESSION_DEPTH} levels of operators, calls and brackets)`,
        at,
        i,
        'split it into several policies, or test membership with a set: ["a", "b"].contains(x) rather than x == "a" || x == "b" || ...',
      );
    }
  }
  return [];
}
