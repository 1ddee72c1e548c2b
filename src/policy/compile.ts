import type * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { BulkheadError } from '../shared/errors.js';
import { POLICY_SCHEMA } from './schema.js';
import { isBaselineId, RESERVED_PREFIX } from './baseline.js';
import { policyShapeProblems } from './guard.js';
import { withCedar } from './engine.js';

/** Longest policy text a tenant may set, bytes (UTF-8). */
export const MAX_POLICY_BYTES = 64 * 1024;
/** Most policies one tenant's set may hold. */
export const MAX_POLICIES = 256;

/**
 * The OAuth errors a tenant may choose for a refusal with `@error("...")` on a `forbid`
 * (`denialError` in ./evaluate.ts applies it). Anything else is refused when the policy is set.
 */
export const DENIAL_ERRORS = ['access_denied', 'invalid_scope', 'invalid_target', 'invalid_request'] as const;
export type DenialError = (typeof DENIAL_ERRORS)[number];

/** Where a problem is in the policy text: offsets (UTF-16 code units, as JS strings index) and 1-based line/column. */
export interface PolicyLocation {
  start: number;
  end: number;
  line: number;
  column: number;
}

/** One problem Cedar (or Bulkhead) found in a policy text. */
export interface PolicyProblem {
  /** The policy it is in (its `@id`, or `policy<N>` by position from 0), when known. */
  policy_id?: string;
  message: string;
  help?: string;
  location?: PolicyLocation;
}

/** A policy text that does not parse or validate (400), with every problem Cedar reported. */
export class InvalidPolicy extends BulkheadError {
  readonly code = 'ERR_INVALID_POLICY';
  constructor(readonly problems: PolicyProblem[]) {
    super(400, 'invalid_request', `invalid policy: ${describeProblem(problems[0]!)}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`);
  }

  override toJSON() {
    return { ...super.toJSON(), problems: this.problems };
  }
}

function describeProblem(p: PolicyProblem): string {
  const at = p.location ? ` at line ${p.location.line}, column ${p.location.column}` : '';
  return `${p.message}${at}`;
}

/** A tenant's policy set, parsed and validated: what is stored, cached and evaluated. */
export interface CompiledPolicy {
  /** The text as the tenant wrote it. */
  text: string;
  /** Every policy by id, in text order: the `@id` annotation, else `policy<N>`. */
  policies: Record<string, string>;
  /** The `@error` a `forbid` chose for its refusals, by policy id. */
  errors: Record<string, DenialError>;
}

/** 1-based line and column of a UTF-8 byte offset (Cedar reports byte offsets) in `text`. */
function locate(text: string, byteStart: number, byteEnd: number): PolicyLocation {
  const bytes = Buffer.from(text, 'utf8');
  const start = bytes.subarray(0, byteStart).toString('utf8').length;
  const end = bytes.subarray(0, byteEnd).toString('utf8').length;
  const before = text.slice(0, start);
  const line = before.split('\n').length;
  const column = start - before.lastIndexOf('\n');
  return { start, end, line, column };
}

function problemsOf(text: string, errors: cedar.DetailedError[], policyId?: (id: string) => string, ids?: string[]): PolicyProblem[] {
  return errors.map((e, i) => {
    const loc = e.sourceLocations?.[0];
    const id = ids?.[i];
    return {
      ...(id !== undefined ? { policy_id: policyId ? policyId(id) : id } : {}),
      message: policyId && id !== undefined ? e.message.replaceAll(`\`${id}\``, `\`${policyId(id)}\``) : e.message,
      ...(e.help ? { help: e.help } : {}),
      ...(loc ? { location: locate(text, loc.start, loc.end) } : {}),
    };
  });
}

/**
 * `policy<N>` for N in 0..count-1, in the order Cedar's `policySetTextToParts` returns the parts
 * (sorted by id as strings: policy0, policy1, policy10, policy11, policy2, ...), so the part at
 * index i is the policy at text position `positions[i]`.
 */
function textPositions(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i).sort((a, b) => (`policy${a}` < `policy${b}` ? -1 : 1));
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Parses and validates a tenant's Cedar policy text against {@link POLICY_SCHEMA} (strict mode),
 * and names its policies. Refuses, with Cedar's own messages and their locations in the text:
 * a text that does not parse, a policy that does not validate, templates (slots are not
 * supported), an empty set (to go back to no policy, delete it), duplicate or reserved
 * (`bulkhead.`) ids, and an unknown `@error`.
 *
 * @example
 * const compiled = compilePolicy('@id("no-write")\npermit(principal, action, resource) unless { context.scopes.contains("tickets:write") };');
 * compiled.policies; // { 'no-write': '@id("no-write")\npermit(...' }
 */
export function compilePolicy(text: string): CompiledPolicy {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) {
    throw new InvalidPolicy([{ message: `the policy text is larger than ${MAX_POLICY_BYTES} bytes` }]);
  }
  // Before Cedar sees the text: a deep enough expression breaks cedar-wasm for the whole process (./guard.ts).
  const shape = policyShapeProblems(text);
  if (shape.length > 0) throw new InvalidPolicy(shape);
  const parts = withCedar('parse a policy text', (cedar) => cedar.policySetTextToParts(text));
  if (parts.type === 'failure') throw new InvalidPolicy(problemsOf(text, parts.errors));
  if (parts.policy_templates.length > 0) {
    throw new InvalidPolicy([{ message: 'templates (policies with ?principal or ?resource slots) are not supported: write static policies' }]);
  }
  if (parts.policies.length === 0) {
    throw new InvalidPolicy([{ message: 'the policy set is empty: a tenant policy denies by default, so an empty one would refuse every token; to go back to no policy, delete it (bulkhead policy delete)' }]);
  }
  if (parts.policies.length > MAX_POLICIES) {
    throw new InvalidPolicy([{ message: `the policy set has ${parts.policies.length} policies; at most ${MAX_POLICIES} are allowed` }]);
  }

  // Names: the `@id` annotation, else Cedar's own positional `policy<N>`.
  const positions = textPositions(parts.policies.length);
  const byPosition: Array<{ id: string; text: string; effect: string; error?: string }> = new Array(parts.policies.length);
  const problems: PolicyProblem[] = [];
  parts.policies.forEach((policy, i) => {
    const position = positions[i]!;
    const json = withCedar('read a policy', (cedar) => cedar.policyToJson(policy));
    if (json.type === 'failure') throw new InvalidPolicy(problemsOf(policy, json.errors));
    const annotations = json.json.annotations ?? {};
    const id = annotations.id ?? `policy${position}`;
    byPosition[position] = { id, text: policy, effect: json.json.effect, ...(annotations.error !== undefined ? { error: annotations.error } : {}) };
  });
  const policies: Record<string, string> = {};
  const errors: Record<string, DenialError> = {};
  const names = new Map<string, string>();
  for (const [position, p] of byPosition.entries()) {
    names.set(`policy${position}`, p.id);
    if (!ID.test(p.id)) {
      problems.push({ policy_id: p.id, message: `@id ${JSON.stringify(p.id)} must be 1-128 letters, digits or . _ : - (starting with a letter or digit)` });
    } else if (isBaselineId(p.id)) {
      problems.push({ policy_id: p.id, message: `@id ${JSON.stringify(p.id)} is reserved: ids starting with "${RESERVED_PREFIX}" belong to the platform baseline` });
    } else if (Object.hasOwn(policies, p.id)) {
      problems.push({ policy_id: p.id, message: `@id ${JSON.stringify(p.id)} is used by more than one policy` });
    }
    if (p.error !== undefined) {
      if (!(DENIAL_ERRORS as readonly string[]).includes(p.error)) {
        problems.push({ policy_id: p.id, message: `@error ${JSON.stringify(p.error)} must be one of ${DENIAL_ERRORS.join(', ')}` });
      } else if (p.effect !== 'forbid') {
        problems.push({ policy_id: p.id, message: '@error applies to the refusals of a forbid policy; this policy is a permit' });
      } else {
        errors[p.id] = p.error as DenialError;
      }
    }
    policies[p.id] = p.text;
  }
  if (problems.length > 0) throw new InvalidPolicy(problems);

  // Validation against the schema, on the text as written, so Cedar's locations point into it.
  const validated = withCedar('validate a policy text', (cedar) => cedar.validate({ schema: POLICY_SCHEMA, policies: { staticPolicies: text }, validationSettings: { mode: 'strict' } }));
  if (validated.type === 'failure') throw new InvalidPolicy(problemsOf(text, validated.errors));
  if (validated.validationErrors.length > 0) {
    const rename = (id: string) => names.get(id) ?? id;
    throw new InvalidPolicy(problemsOf(text, validated.validationErrors.map((e) => e.error), rename, validated.validationErrors.map((e) => e.policyId)));
  }
  return { text, policies, errors };
}
