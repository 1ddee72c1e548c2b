/**
 * Policy texts that break cedar-wasm 4.13's single WebAssembly instance for the whole process
 * (stack overflow in wasm, then "memory access out of bounds" on every call), each at the
 * smallest size that did so when probed in a fresh process: `phase` is where it broke (parsing
 * and validating a text, or evaluating it). Used by ./guard.test.ts (refused by the guard) and
 * ./guard.child.test.ts (refused by compilePolicy, in a child process, with the engine intact).
 */
const W = (e: string) => `permit(principal, action, resource) when { ${e} };`;
const rep = (s: string, n: number) => s.repeat(n);

export interface CrashShape {
  name: string;
  text: string;
  phase: 'parse' | 'evaluate';
}

export const CRASH_SHAPES: CrashShape[] = [
  { name: 'nested parentheses (the review repro, 1000)', phase: 'parse', text: W(`${rep('(', 1000)}true${rep(')', 1000)}`) },
  { name: '131 nested parentheses', phase: 'parse', text: W(`${rep('(', 131)}true${rep(')', 131)}`) },
  { name: '127 nested set literals', phase: 'parse', text: W(`${rep('[', 127)}true${rep(']', 127)}.isEmpty()`) },
  { name: '125 nested sets as an argument', phase: 'evaluate', text: W(`[1].contains(${rep('[', 125)}1${rep(']', 125)})`) },
  { name: '119 nested records', phase: 'parse', text: W(`${rep('{a:', 119)}true${rep('}', 119)} has a`) },
  { name: '42 nested ([{a: triples', phase: 'parse', text: W(`${rep('([{a:', 42)}true${rep('}])', 42)}`) },
  { name: '131 !( ... )', phase: 'parse', text: W(`${rep('!(', 131)}true${rep(')', 131)}`) },
  { name: '131 (context has a) in parentheses', phase: 'parse', text: W(`${rep('(', 131)}context has a${rep(')', 131)}`) },
  { name: '112 if (...) nested in conditions', phase: 'parse', text: W(`${rep('if (', 112)}true${rep(') then true else false', 112)}`) },
  { name: '64 nested [x + 1 + 1 + 1, [ ... ]] (sets with arithmetic)', phase: 'parse', text: W(`${rep('[context.ttl + 1 + 1 + 1, [', 64)}1${rep(']]', 64)}.isEmpty()`) },
  { name: '112 if ... then ( ... ) nested in branches', phase: 'parse', text: W(`${rep('if context.dpop then (', 112)}true${rep(') else false', 112)}`) },
  { name: '122 nested ip(...) calls', phase: 'parse', text: W(`${rep('ip(', 122)}"1.1.1.1"${rep(')', 122)}.isIpv4()`) },
  { name: '365 if-then-else nested in branches', phase: 'evaluate', text: W(`${rep('if true then ', 365)}true${rep(' else false', 365)}`) },
  { name: '365 if-then-else nested in conditions', phase: 'evaluate', text: W(`${rep('if ', 365)}true${rep(' then true else false', 365)}`) },
  { name: '362 + chain', phase: 'evaluate', text: W(`context.ttl${rep(' + 1', 362)} > 0`) },
  { name: '362 - chain', phase: 'evaluate', text: W(`context.ttl${rep(' - 1', 362)} > 0`) },
  { name: '362 * chain', phase: 'evaluate', text: W(`context.ttl${rep(' * 1', 362)} > 0`) },
  { name: '363 && of .contains()', phase: 'evaluate', text: W(`context.scopes.contains("a")${rep(' && context.scopes.contains("a")', 363)}`) },
  { name: '364 chained method calls', phase: 'evaluate', text: W(`context.scopes${rep('.isEmpty()', 364)}`) },
  { name: '365 chained attributes', phase: 'evaluate', text: W(`context${rep('.a', 365)}`) },
  { name: '365 chained ["a"] index', phase: 'evaluate', text: W(`context${rep('["a"]', 365)}`) },
  { name: '290 chained decimal .lessThan()', phase: 'evaluate', text: W(`decimal("1.0")${rep('.lessThan(decimal("1.0"))', 290)}`) },
  { name: '365 chained .getTag()', phase: 'evaluate', text: W(`principal${rep('.getTag("a")', 365)}`) },
  // Breaks the JS side of policyToJson (RangeError) rather than the instance; refused all the same.
  { name: '3132 && of true', phase: 'parse', text: W(`true${rep(' && true', 3132)}`) },
];
