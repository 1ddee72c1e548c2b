import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/policy/compile.js';
import { denialError, preparePolicySet, requestProblem, type PolicyRequest } from '../../src/policy/evaluate.js';
import { actorSubjects, enforcePolicy, policyRefusal } from '../../src/grants/policy.js';

const NOW = 1_800_000_000;
const API = 'https://tickets.acme.example';

/** A client-credentials request of acme's service `svc` for the tickets API, as the grant builds it. */
function issue(over: Partial<PolicyRequest['context']> = {}, req: Partial<PolicyRequest> = {}): PolicyRequest {
  return {
    tenantId: 'acme',
    action: 'issue',
    principal: { type: 'Client', id: 'svc', tenants: ['acme'] },
    resource: { uri: API, tenantId: 'acme' },
    context: { scopes: ['tickets:read'], ttl: 300, dpop: false, actorChain: [], time: NOW, ttlCap: 300, ...over },
    ...req,
  };
}

/** An exchange in acme by the agent `bot` from `vendor`, installed by delegation dl_1. */
function exchange(over: Partial<PolicyRequest['context']> = {}): PolicyRequest {
  return {
    tenantId: 'acme',
    action: 'exchange',
    principal: { type: 'Agent', id: 'bot', tenants: ['vendor', 'acme'] },
    resource: { uri: API, tenantId: 'acme' },
    context: { scopes: ['tickets:read'], ttl: 120, dpop: false, actorChain: [], time: NOW, ttlCap: 300, subject: 'bot', delegation: 'dl_1', ...over },
  };
}

const prepared = (text: string, preparseAs?: string) => preparePolicySet(compilePolicy(text), preparseAs ? { preparseAs } : {});
const decide = (text: string, req: PolicyRequest) => prepared(text).decide(req);

describe('policy decisions: tables of requests', () => {
  const DESIGN_EXAMPLE = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };';

  it.each([
    ['read', issue({ scopes: ['tickets:read'] }), 'allow'],
    ['write', issue({ scopes: ['tickets:write'] }), 'deny'],
    ['read and write', issue({ scopes: ['tickets:read', 'tickets:write'] }), 'deny'],
    ['no scope', issue({ scopes: [] }), 'allow'],
    ['exchange, read', exchange({ scopes: ['tickets:read'] }), 'allow'],
    ['exchange, write', exchange({ scopes: ['tickets:write'] }), 'deny'],
  ] as const)("DESIGN.md's example as written: %s → %s", (_name, req, effect) => {
    const d = decide(DESIGN_EXAMPLE, req);
    expect(d.effect).toBe(effect);
    expect(d.policyIds).toEqual(effect === 'allow' ? ['policy0'] : []);
  });

  const POLICY = [
    '@id("services-read")',
    'permit(principal is Client, action == Action::"issue", resource) when { context.scopes.containsAll(["tickets:read"]) && context.ttl <= 300 };',
    '@id("bot-via-dl_1")',
    'permit(principal == Agent::"bot", action == Action::"exchange", resource == Resource::"https://tickets.acme.example") when { context has delegation && context.delegation == "dl_1" };',
    '@id("dpop-for-write")',
    '@error("invalid_scope")',
    'forbid(principal, action, resource) when { context.scopes.contains("tickets:write") && !context.dpop };',
    '@id("no-chains-through-evil")',
    '@error("invalid_request")',
    'forbid(principal, action == Action::"exchange", resource) when { context.actorChain.contains("evil") };',
    '@id("office-hours")',
    'forbid(principal, action, resource) when { context.time >= 1900000000 };',
    '@id("uri-by-attribute")',
    'forbid(principal, action, resource) when { resource.uri like "https://billing.*" };',
  ].join('\n');

  it.each([
    ['a service reading', issue(), 'allow', ['services-read'], undefined],
    ['a service, ttl over 300 (policy, not cap)', issue({ ttl: 301, ttlCap: 600 }), 'deny', [], 'access_denied'],
    ['an agent issuing (not permitted)', issue({}, { principal: { type: 'Agent', id: 'bot', tenants: ['acme'] } }), 'deny', [], 'access_denied'],
    ['the agent through dl_1', exchange(), 'allow', ['bot-via-dl_1'], undefined],
    ['the agent through another delegation', exchange({ delegation: 'dl_2' }), 'deny', [], 'access_denied'],
    ['the agent with no delegation in context', exchange({ delegation: undefined }), 'deny', [], 'access_denied'],
    ['write without DPoP', exchange({ scopes: ['tickets:write'] }), 'deny', ['dpop-for-write'], 'invalid_scope'],
    ['write with DPoP', exchange({ scopes: ['tickets:write'], dpop: true }), 'allow', ['bot-via-dl_1'], undefined],
    ['a chain through evil', exchange({ actorChain: ['bot', 'evil'] }), 'deny', ['no-chains-through-evil'], 'invalid_request'],
    ['a chain without evil', exchange({ actorChain: ['bot', 'good'] }), 'allow', ['bot-via-dl_1'], undefined],
    ['after hours', exchange({ time: 1_900_000_000 }), 'deny', ['office-hours'], 'access_denied'],
    ['a billing resource', issue({}, { resource: { uri: 'https://billing.acme.example', tenantId: 'acme' } }), 'deny', ['uri-by-attribute'], 'access_denied'],
  ] as const)('%s → %s', (_name, req, effect, ids, error) => {
    const d = decide(POLICY, req);
    expect(d).toEqual({ effect, policyIds: ids, ...(error ? { error } : {}) });
  });

  it('a tenant without a policy: its registrations decide (allow), the baseline still applies', () => {
    const none = preparePolicySet(undefined);
    expect(none.tenantPolicy).toBe(false);
    expect(none.decide(issue())).toEqual({ effect: 'allow', policyIds: ['bulkhead.registrations'] });
    expect(none.decide(issue({ ttl: 301 }))).toEqual({ effect: 'deny', policyIds: ['bulkhead.ttl-cap'], error: 'access_denied' });
  });
});

describe('the platform baseline cannot be overridden by a tenant permit', () => {
  const PERMIT_ALL = '@id("everything")\npermit(principal, action, resource);';

  it('control: the permit-all policy allows an ordinary request', () => {
    expect(decide(PERMIT_ALL, issue())).toEqual({ effect: 'allow', policyIds: ['everything'] });
  });

  it.each([
    ['TTL over the cap', issue({ ttl: 301 }), ['bulkhead.ttl-cap']],
    ['a principal of another tenant', issue({}, { principal: { type: 'Client', id: 'svc', tenants: ['globex'] } }), ['bulkhead.cross-tenant']],
    ['a resource of another tenant', issue({}, { resource: { uri: API, tenantId: 'globex' } }), ['bulkhead.cross-tenant']],
    ['an agent not installed here', { ...exchange(), principal: { type: 'Agent' as const, id: 'bot', tenants: ['vendor'] } }, ['bulkhead.cross-tenant']],
    ['both', issue({ ttl: 9999 }, { resource: { uri: API, tenantId: 'globex' } }), ['bulkhead.cross-tenant', 'bulkhead.ttl-cap']],
  ])('%s → deny by the baseline, access_denied', (_name, req, ids) => {
    for (const text of [PERMIT_ALL, '@id("specific")\npermit(principal == Client::"svc", action, resource) when { context.ttl > 0 };']) {
      expect(decide(text, req)).toEqual({ effect: 'deny', policyIds: ids, error: 'access_denied' });
    }
  });

  it('an installed agent from another tenant is inside the tenant (control for the row above)', () => {
    expect(decide(PERMIT_ALL, exchange()).effect).toBe('allow');
  });
});

describe('denials: which OAuth error', () => {
  it('invalid_scope when the same request without scopes would be allowed', () => {
    const d = decide('permit(principal, action, resource) when { context.scopes.isEmpty() || context.scopes == ["tickets:read"] };', issue({ scopes: ['tickets:admin'] }));
    expect(d).toEqual({ effect: 'deny', policyIds: [], error: 'invalid_scope' });
  });

  it('access_denied when no scope set would help', () => {
    expect(decide('permit(principal, action, resource) when { context.ttl < 10 };', issue()).error).toBe('access_denied');
  });

  it('an @error on the refusing forbid wins over the scope probe; the baseline wins over @error', () => {
    const text = '@id("f")\n@error("invalid_target")\nforbid(principal, action, resource) when { context.scopes.contains("x") };\npermit(principal, action, resource);';
    expect(decide(text, issue({ scopes: ['x'] }))).toEqual({ effect: 'deny', policyIds: ['f'], error: 'invalid_target' });
    expect(decide(text, issue({ scopes: ['x'], ttl: 301 }))).toEqual({ effect: 'deny', policyIds: ['bulkhead.ttl-cap', 'f'], error: 'access_denied' });
  });

  it('denialError, as a table', () => {
    expect(denialError({ policyIds: ['bulkhead.ttl-cap'] }, {}, () => true)).toBe('access_denied');
    expect(denialError({ policyIds: ['a', 'b'] }, { b: 'invalid_target' }, () => true)).toBe('invalid_target');
    expect(denialError({ policyIds: [] }, {}, () => true)).toBe('invalid_scope');
    expect(denialError({ policyIds: [] }, {}, () => false)).toBe('access_denied');
  });

  it('a policy that fails to evaluate denies (fail closed), even next to a permit', () => {
    const text = '@id("ok")\npermit(principal, action, resource);\n@id("overflows")\nforbid(principal, action, resource) when { context.ttl * 9223372036854775807 > 0 };';
    expect(decide(text, issue())).toEqual({ effect: 'deny', policyIds: ['overflows'], error: 'access_denied' });
  });

  it('the refusals name no policy', () => {
    for (const code of ['invalid_scope', 'invalid_target', 'invalid_request', 'access_denied', undefined] as const) {
      const err = policyRefusal(code, ['tickets:write']) as Error & { error: string; error_description: string };
      expect(err.error).toBe(code ?? 'access_denied');
      expect(err.error_description).not.toMatch(/policy\d|@id|bulkhead\./);
    }
  });
});

describe('requestProblem: a hand-written request checked against the schema', () => {
  it('accepts what the grants build, refuses what the schema does not allow', () => {
    expect(requestProblem(issue())).toBeUndefined();
    expect(requestProblem(exchange())).toBeUndefined();
    expect(requestProblem(exchange({ delegation: undefined }))).toBeUndefined();
    expect(requestProblem({ ...issue(), principal: { type: 'User' as never, id: 'u', tenants: ['acme'] } })).toMatch(/User/);
  });
});

describe('prepared (preparsed) policy sets', () => {
  it('a preparsed set decides exactly as an unparsed one', () => {
    const text = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };';
    const a = prepared(text, 'test:same');
    const b = prepared(text);
    for (const req of [issue(), issue({ scopes: ['tickets:write'] }), exchange(), issue({ ttl: 301 })]) expect(a.decide(req)).toEqual(b.decide(req));
  });

  it('preparing a newer set under the same id does not change what an older one decides', () => {
    const old = prepared('@id("old")\npermit(principal, action, resource);', 'test:slot');
    expect(old.decide(issue())).toEqual({ effect: 'allow', policyIds: ['old'] });
    const newer = prepared('@id("new")\nforbid(principal, action, resource);', 'test:slot');
    expect(newer.decide(issue())).toMatchObject({ effect: 'deny', policyIds: ['new'] });
    expect(old.decide(issue())).toEqual({ effect: 'allow', policyIds: ['old'] });
  });
});

describe('enforcePolicy: what the grants record and throw', () => {
  const deps = (text: string | undefined) => ({ policies: { forTenant: async () => preparePolicySet(text ? compilePolicy(text) : undefined) } });

  it('records the decision on ctx.state.policyDecision, allow or deny', async () => {
    const ctx = { state: {} as Record<string, unknown> };
    await enforcePolicy(ctx as never, deps('@id("p")\npermit(principal, action, resource);'), issue());
    expect(ctx.state.policyDecision).toEqual({ effect: 'allow', policyIds: ['p'] });

    const denied = { state: {} as Record<string, unknown> };
    await expect(enforcePolicy(denied as never, deps('@id("f")\nforbid(principal, action, resource);'), issue())).rejects.toMatchObject({ error: 'access_denied' });
    expect(denied.state.policyDecision).toEqual({ effect: 'deny', policyIds: ['f'] });
  });

  it('a policy that cannot be loaded refuses: the error propagates, nothing is recorded as allowed', async () => {
    const ctx = { state: {} as Record<string, unknown> };
    const down = { policies: { forTenant: async () => { throw new Error('database down'); } } };
    await expect(enforcePolicy(ctx as never, down as never, issue())).rejects.toThrow('database down');
    expect(ctx.state.policyDecision).toBeUndefined();
  });

  it('actorSubjects lists the act chain nearest first', () => {
    expect(actorSubjects(undefined)).toEqual([]);
    expect(actorSubjects({ sub: 'a', act: { sub: 'b', act: { sub: 'c' } } })).toEqual(['a', 'b', 'c']);
  });
});
