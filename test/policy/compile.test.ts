import { describe, expect, it } from 'vitest';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { compilePolicy, InvalidPolicy, MAX_POLICY_BYTES } from '../../src/policy/compile.js';
import { BASELINE_POLICIES, REGISTRATIONS_POLICY } from '../../src/policy/baseline.js';
import { POLICY_SCHEMA } from '../../src/policy/schema.js';

const DESIGN_EXAMPLE = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };';

function refusal(text: string): InvalidPolicy {
  try {
    compilePolicy(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidPolicy);
    return err as InvalidPolicy;
  }
  throw new Error(`accepted: ${text}`);
}

describe('compilePolicy: what a tenant may set', () => {
  it('the schema parses, and the baseline and registrations policies validate against it', () => {
    expect(cedar.checkParseSchema(POLICY_SCHEMA)).toEqual({ type: 'success' });
    const v = cedar.validate({ schema: POLICY_SCHEMA, policies: { staticPolicies: { ...BASELINE_POLICIES, ...REGISTRATIONS_POLICY } }, validationSettings: { mode: 'strict' } });
    expect(v).toMatchObject({ type: 'success', validationErrors: [] });
  });

  it("DESIGN.md's example compiles as written, named policy0", () => {
    const c = compilePolicy(DESIGN_EXAMPLE);
    expect(c.policies).toEqual({ policy0: DESIGN_EXAMPLE });
    expect(c.text).toBe(DESIGN_EXAMPLE);
  });

  it('policies are named by @id, else policy<N> by their position in the text (also past 10)', () => {
    const lines = Array.from({ length: 12 }, (_, i) => `permit(principal, action, resource) when { context.ttl == ${i} };`);
    lines[11] = `@id("last")\n${lines[11]}`;
    const c = compilePolicy(lines.join('\n'));
    const ids = Object.keys(c.policies);
    expect(ids).toEqual([...Array.from({ length: 11 }, (_, i) => `policy${i}`), 'last']);
    // policy10 is the 11th policy of the text, whatever order Cedar lists the parts in.
    expect(c.policies.policy10).toContain('context.ttl == 10');
    expect(c.policies.policy2).toContain('context.ttl == 2');
    expect(c.policies.last).toContain('context.ttl == 11');
  });

  it('the context of an exchange (subject, optional delegation) validates for exchange only', () => {
    expect(() => compilePolicy('permit(principal, action == Action::"exchange", resource) when { context.subject == "u" && context has delegation && context.delegation == "dl_1" };')).not.toThrow();
    const e = refusal('permit(principal, action, resource) when { context.subject == "u" };');
    expect(e.problems[0]!.message).toMatch(/attribute `subject` in context for Action::"issue" not found/);
  });

  it('every context attribute of the contract is usable: scopes, ttl, dpop, actorChain, time, tenant, ttlCap', () => {
    expect(() =>
      compilePolicy('permit(principal, action, resource) when { context.scopes.contains("a") && context.ttl < context.ttlCap && context.dpop && context.actorChain.isEmpty() && context.time > 0 && principal in context.tenant && resource.uri like "https://*" };'),
    ).not.toThrow();
    expect(() => compilePolicy('permit(principal is Agent, action, resource) when { principal in Tenant::"acme" };')).not.toThrow();
  });

  it("a syntax error is refused with Cedar's message and its line and column in the text", () => {
    const text = 'permit(principal, action, resource);\n\npermit(principal, action, resource) when { context.ttl ++ 1 };';
    const e = refusal(text);
    expect(e.status).toBe(400);
    expect(e.problems[0]!.message).toMatch(/unexpected token `\+`/);
    expect(e.problems[0]!.location).toMatchObject({ line: 3, column: 57 });
    expect(text.slice(e.problems[0]!.location!.start, e.problems[0]!.location!.end)).toBe('+');
    expect(e.toJSON()).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/^invalid policy: .*unexpected token .* at line 3, column 57/), problems: [expect.any(Object)] });
  });

  it('a policy that does not validate against the schema is refused, named by its @id, located in the text', () => {
    const text = 'permit(principal, action, resource);\n@id("typo")\npermit(principal, action, resource) when { context.scope.contains("x") };';
    const e = refusal(text);
    // Once per action the policy applies to (issue, exchange).
    expect(e.problems.map((p) => p.policy_id)).toEqual(['typo', 'typo']);
    expect(e.problems[0]).toMatchObject({ policy_id: 'typo', message: expect.stringMatching(/for policy `typo`, attribute `scope` in context .* not found/), help: expect.stringMatching(/scopes/) });
    expect(e.problems[0]!.location!.line).toBe(3);
    expect(text.slice(e.problems[0]!.location!.start, e.problems[0]!.location!.end)).toMatch(/^context\.scope\b/);
  });

  it('locations count characters, not bytes, after non-ASCII text', () => {
    const text = '// tenant ä ü\npermit(principal, action, resource) when { context.nope };';
    const e = refusal(text);
    expect(text.slice(e.problems[0]!.location!.start, e.problems[0]!.location!.end)).toBe('context.nope');
    expect(e.problems[0]!.location).toMatchObject({ line: 2, column: 44 });
  });

  it.each([
    ['unknown entity type', 'permit(principal == User::"x", action, resource);', /unrecognized entity type `User`|User/],
    ['unknown action', 'permit(principal, action == Action::"delete", resource);', /unrecognized action/],
    ['type error', 'permit(principal, action, resource) when { context.ttl == "300" };', /type/i],
    ['empty set', '// nothing but a comment\n', /empty/],
    ['template', 'permit(principal == ?principal, action, resource);', /templates/],
    ['reserved id', '@id("bulkhead.ttl-cap")\npermit(principal, action, resource);', /reserved/],
    ['duplicate id', '@id("a")\npermit(principal, action, resource);\n@id("a")\nforbid(principal, action, resource);', /more than one policy/],
    ['bad id', '@id("has space")\npermit(principal, action, resource);', /must be 1-128/],
    ['unknown @error', '@error("server_error")\nforbid(principal, action, resource);', /must be one of/],
    ['@error on a permit', '@error("invalid_scope")\npermit(principal, action, resource);', /forbid/],
  ])('refuses: %s', (_name, text, message) => {
    const e = refusal(text);
    expect(e.problems.map((p) => p.message).join('\n')).toMatch(message);
  });

  it('refuses a text over the size limit', () => {
    expect(refusal(`// ${'x'.repeat(MAX_POLICY_BYTES)}\npermit(principal, action, resource);`).problems[0]!.message).toMatch(/larger than/);
  });

  it('@error on a forbid is kept for the refusal', () => {
    const c = compilePolicy('@id("no-billing")\n@error("invalid_target")\nforbid(principal, action, resource) when { resource.uri == "https://billing" };\npermit(principal, action, resource);');
    expect(c.errors).toEqual({ 'no-billing': 'invalid_target' });
  });
});
