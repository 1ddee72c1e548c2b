import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const API = 'https://tickets.acme.test/';
const BILLING = 'https://billing.acme.test/';
const DESIGN_EXAMPLE = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };';

/**
 * Tenant policies (issue #5) through the real token endpoint: a tenant with a Cedar policy gets
 * exactly what the policy allows, after every structural check; a tenant without one behaves as
 * before; the platform baseline holds under any tenant permit; refusals never name a policy.
 */
describe.each(DATABASES)('tenant policies at the token endpoint (%s)', (kind) => {
  let b: TestBroker;
  let svc: { client_id: string; client_secret?: string };
  let short: { client_id: string; client_secret?: string };
  let globex: Awaited<ReturnType<typeof seedTenant>>;
  let bot: { client_id: string; client_secret: string };
  let bot2: { client_id: string; client_secret: string };
  let delegation: string;

  beforeAll(async () => {
    b = await startTestBroker(kind);
    await b.admin('POST', '/tenants', { id: 'vendor' });
    bot = (await b.admin('POST', '/tenants/vendor/agents', { name: 'bot' })).body;
    bot2 = (await b.admin('POST', '/tenants/vendor/agents', { name: 'bot2' })).body;
    const acme = await seedTenant(b, 'acme', { resource: API, clientName: 'svc', clientScopes: ['tickets:read', 'tickets:write'] });
    svc = acme;
    await b.admin('POST', '/tenants/acme/resources', { uri: BILLING, scopes: ['invoices:read'] });
    short = (await b.admin('POST', '/tenants/acme/clients', { name: 'short', scopes: ['tickets:read', 'invoices:read'], resources: [API, BILLING], token_ttl: 60 })).body;
    globex = await seedTenant(b, 'globex', { resource: 'https://tickets.globex.test/', clientName: 'svc', clientScopes: ['tickets:read', 'tickets:write'] });
    delegation = (await b.admin('POST', '/tenants/acme/delegations', { client_id: bot.client_id, scopes: ['tickets:read', 'tickets:write'], resources: [API], token_ttl: 120 })).body.id;
    await b.admin('POST', '/tenants/acme/delegations', { client_id: bot2.client_id, scopes: ['tickets:read'], resources: [API] });
  });
  afterAll(() => b?.close());
  afterEach(async () => {
    for (const t of ['acme', 'globex']) await b.admin('DELETE', `/tenants/${t}/policy`);
  });

  const setPolicy = (tenant: string, policy: string) => b.admin('PUT', `/tenants/${tenant}/policy`, { policy });

  /** Runs a token request and returns its response with the policy decision the grant recorded on ctx.state. */
  async function recorded<T>(tenant: string, request: () => Promise<T>): Promise<{ res: T; decision: unknown }> {
    const { provider } = (await b.broker.services.issuers.get(tenant))!;
    let decision: unknown = 'not recorded';
    const seen = (ctx: KoaContextWithOIDC) => void (decision = ctx.state.policyDecision);
    provider.once('grant.success', seen);
    provider.once('grant.error', seen);
    try {
      return { res: await request(), decision };
    } finally {
      provider.off('grant.success', seen);
      provider.off('grant.error', seen);
    }
  }

  const cc = (tenant: string, c: { client_id: string; client_secret?: string }, form: Record<string, string> = {}) =>
    tokenRequest(b, tenant, { grant_type: 'client_credentials', ...form }, { basic: [c.client_id, c.client_secret!] });

  async function credential(agent: { client_id: string; client_secret: string }): Promise<string> {
    const r = await cc('vendor', agent);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.access_token;
  }
  async function exchange(agent: { client_id: string; client_secret: string }, form: Record<string, string> = {}) {
    return tokenRequest(b, 'acme', { grant_type: TE, subject_token: await credential(agent), subject_token_type: AT, resource: API, ...form }, { basic: [agent.client_id, agent.client_secret] });
  }

  it("no policy: today's behaviour, decided by the registrations (and recorded as such)", async () => {
    expect((await b.admin('GET', '/tenants/acme/policy')).body).toEqual({ tenant: 'acme', text: null, version: null, policy_ids: [], updated_at: null, updated_by: null });
    const { res, decision } = await recorded('acme', () => cc('acme', svc, { resource: API, scope: 'tickets:read tickets:write' }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.scope).toBe('tickets:read tickets:write');
    expect(decision).toEqual({ effect: 'allow', policyIds: ['bulkhead.registrations'] });
    expect((await exchange(bot, { scope: 'tickets:write' })).status).toBe(200);
    // What the registrations refuse stays refused, exactly as before policies existed.
    const r = await cc('acme', svc, { resource: API, scope: 'tickets:delete' });
    expect(r.body).toEqual({ error: 'invalid_scope', error_description: 'scope not allowed for this client: tickets:delete' });
  });

  it("DESIGN.md's example policy works as written: read is issued (oauth4webapi, verified with jose), write is invalid_scope", async () => {
    await setPolicy('acme', DESIGN_EXAMPLE);
    const issuer = new URL(b.issuer('acme'));
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    const c: oauth.Client = { client_id: svc.client_id };
    const ok = await oauth.processClientCredentialsResponse(as, c, await oauth.clientCredentialsGrantRequest(
      as, c, oauth.ClientSecretBasic(svc.client_secret!), new URLSearchParams({ scope: 'tickets:read', resource: API }), insecure,
    ));
    const { payload } = await jwtVerify(ok.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: b.issuer('acme'), audience: API, typ: 'at+jwt' });
    expect(payload).toMatchObject({ tenant_id: 'acme', client_id: svc.client_id, scope: 'tickets:read' });

    const { res, decision } = await recorded('acme', () => cc('acme', svc, { resource: API, scope: 'tickets:read tickets:write' }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_scope', error_description: "scope not allowed by the tenant's policy: tickets:read tickets:write" });
    expect(decision).toEqual({ effect: 'deny', policyIds: [] });
    // Token exchange: the same policy, action exchange.
    expect((await exchange(bot, { scope: 'tickets:read' })).status).toBe(200);
    expect((await exchange(bot, { scope: 'tickets:write' })).body.error).toBe('invalid_scope');
  });

  it('a policy table, request by request through the token endpoint (issue and exchange)', async () => {
    await setPolicy('acme', [
      '@id("services")',
      'permit(principal is Client, action == Action::"issue", resource) when { context.ttl <= 60 || resource.uri == "https://tickets.acme.test/" };',
      '@id("no-billing-for-svc")',
      '@error("invalid_target")',
      `forbid(principal == Client::"${svc.client_id}", action, resource == Resource::"${BILLING}");`,
      '@id("bot-through-its-delegation")',
      `permit(principal is Agent, action == Action::"exchange", resource) when { context has delegation && context.delegation == "${delegation}" && context.ttl <= 120 };`,
    ].join('\n'));

    const rows: Array<[string, () => Promise<{ status: number; body: any }>, number, string | undefined, string[]]> = [
      ['svc, tickets (ttl 300, by resource)', () => cc('acme', svc, { resource: API, scope: 'tickets:read' }), 200, undefined, ['services']],
      ['short, billing (ttl 60)', () => cc('acme', short, { resource: BILLING, scope: 'invoices:read' }), 200, undefined, ['services']],
      ['short, tickets', () => cc('acme', short, { resource: API, scope: 'tickets:read' }), 200, undefined, ['services']],
      ['bot, through its delegation', () => exchange(bot, { scope: 'tickets:read' }), 200, undefined, ['bot-through-its-delegation']],
      ['bot2, another delegation', () => exchange(bot2, { scope: 'tickets:read' }), 400, 'access_denied', []],
    ];
    for (const [name, request, status, error, policyIds] of rows) {
      const { res, decision } = await recorded('acme', request);
      expect(res.status, `${name}: ${JSON.stringify(res.body)}`).toBe(status);
      if (error) expect(res.body.error, name).toBe(error);
      expect(decision, name).toEqual({ effect: status === 200 ? 'allow' : 'deny', policyIds });
    }
    // svc is not registered for billing: the structural check refuses first (and no policy is asked).
    const { res: structural, decision: none } = await recorded('acme', () => cc('acme', svc, { resource: BILLING }));
    expect(structural.body.error).toBe('invalid_target');
    expect(none).toBeUndefined();
  });

  it('the context reaches the policy as the grant saw it: ttl, dpop, time, tenant, ttlCap, subject, actorChain', async () => {
    const now = Math.floor(Date.now() / 1000);
    const permitAll = '\npermit(principal, action, resource);';
    /** A DPoP proof (RFC 9449) for acme's token endpoint. */
    const dpop = async () => {
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      return new SignJWT({ htm: 'POST', htu: `${b.issuer('acme')}/token`, jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) }).setIssuedAt().sign(privateKey);
    };
    /** A token of acme for the user alice, issued to acme's portal, naming bot in may_act. */
    const alice = async () => {
      const { signer } = await b.broker.services.keys.loadForIssuer('acme');
      return new SignJWT({ iss: b.issuer('acme'), tenant_id: 'acme', sub: 'alice', client_id: 'portal', aud: API, scope: 'tickets:read', may_act: { sub: bot.client_id }, iat: now, exp: now + 300, jti: randomUUID() })
        .setProtectedHeader({ alg: signer!.alg, kid: signer!.kid, typ: 'at+jwt' }).sign(await importJWK(signer!.privateJwk, signer!.alg));
    };
    const exchangeAlice = async () => tokenRequest(b, 'acme', { grant_type: TE, subject_token: await alice(), subject_token_type: AT, resource: API, scope: 'tickets:read' }, { basic: [bot.client_id, bot.client_secret] });
    const read = (c = svc, headers: Record<string, string> = {}) => tokenRequest(b, 'acme', { grant_type: 'client_credentials', resource: API, scope: 'tickets:read' }, { basic: [c.client_id, c.client_secret!], headers });

    const rows: Array<[string, string, () => Promise<{ status: number; body: any }>, number]> = [
      ['ttl 300 over 60', 'forbid(principal, action, resource) when { context.ttl > 60 };' + permitAll, () => read(svc), 400],
      ['ttl 60 within 60', 'forbid(principal, action, resource) when { context.ttl > 60 };' + permitAll, () => read(short), 200],
      ['no DPoP proof', 'forbid(principal, action, resource) unless { context.dpop };' + permitAll, () => read(svc), 400],
      ['a DPoP proof', 'forbid(principal, action, resource) unless { context.dpop };' + permitAll, async () => read(svc, { dpop: await dpop() }), 200],
      ['time past', `forbid(principal, action, resource) when { context.time > ${now - 3600} };` + permitAll, () => read(svc), 400],
      ['time future', `forbid(principal, action, resource) when { context.time > ${now + 3600} };` + permitAll, () => read(svc), 200],
      ['tenant and cap', 'permit(principal, action, resource) when { principal in context.tenant && context.tenant == Tenant::"acme" && context.ttlCap == 300 };', () => read(svc), 200],
      ['another cap', 'permit(principal, action, resource) when { context.ttlCap == 301 };', () => read(svc), 400],
      ['alice via bot', `permit(principal, action == Action::"exchange", resource) when { context.subject == "alice" && context.actorChain.contains("${bot.client_id}") };`, exchangeAlice, 200],
      ['bot for itself', `permit(principal, action == Action::"exchange", resource) when { context.subject == "alice" && context.actorChain.contains("${bot.client_id}") };`, () => exchange(bot, { scope: 'tickets:read' }), 400],
      ['alice, another actor', 'permit(principal, action == Action::"exchange", resource) when { context.subject == "alice" && context.actorChain.contains("someone-else") };', exchangeAlice, 400],
    ];
    for (const [name, policy, request, status] of rows) {
      await setPolicy('acme', policy);
      const r = await request();
      expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBe(status);
      if (status === 400) expect(r.body.error, name).toBe('access_denied');
    }
  });

  it('a forbid with @error("invalid_target") answers invalid_target; the refusal names no policy', async () => {
    // short may use billing; this policy forbids it for billing with a chosen error.
    await setPolicy('acme', [
      '@id("secret-rule-7f3a")',
      '@error("invalid_target")',
      `forbid(principal, action, resource == Resource::"${BILLING}");`,
      '@id("secret-permit-9c1d")',
      'permit(principal, action, resource);',
    ].join('\n'));
    const { res, decision } = await recorded('acme', () => cc('acme', short, { resource: BILLING, scope: 'invoices:read' }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_target', error_description: "the tenant's policy does not allow a token for this resource" });
    expect(decision).toEqual({ effect: 'deny', policyIds: ['secret-rule-7f3a'] });
    const everything = JSON.stringify({ body: res.body, headers: [...res.headers] });
    expect(everything).not.toMatch(/secret-rule|secret-permit|policy0|bulkhead\./);
    expect((await cc('acme', short, { resource: API, scope: 'tickets:read' })).status).toBe(200);
  });

  it('a default deny (no permit matches) is access_denied, with no policy named', async () => {
    await setPolicy('acme', `@id("only-bot")\npermit(principal == Agent::"${bot.client_id}", action, resource);`);
    const { res, decision } = await recorded('acme', () => cc('acme', svc, { resource: API, scope: 'tickets:read' }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'access_denied', error_description: "the tenant's policy does not allow this request" });
    expect(decision).toEqual({ effect: 'deny', policyIds: [] });
    expect(JSON.stringify(res.body)).not.toContain('only-bot');
    expect((await exchange(bot, { scope: 'tickets:read' })).status).toBe(200);
  });

  it('the baseline cannot be overridden by permit(principal, action, resource)', async () => {
    await setPolicy('acme', '@id("everything")\npermit(principal, action, resource);');
    // Through the token endpoint: the permit widens nothing the registrations refuse.
    expect((await cc('acme', svc, { resource: API, scope: 'tickets:delete' })).body.error).toBe('invalid_scope');
    expect((await cc('acme', globex, { resource: API })).status).toBe(401);
    // What reaches the policy always satisfies the baseline, so it is shown by the policy's own
    // test route, which decides with the same set: a foreign principal, a foreign resource and a
    // TTL over the tenant's cap (300) are denied by the baseline, the permit notwithstanding.
    const r = await b.admin('POST', '/tenants/acme/policy/test', {
      requests: [
        { name: 'control', principal: { id: svc.client_id }, action: 'issue', resource: API, context: { scopes: ['tickets:read'] } },
        { name: 'foreign principal', principal: { id: globex.client_id, tenant: 'globex' }, action: 'issue', resource: API },
        { name: 'foreign resource', principal: { id: svc.client_id }, action: 'issue', resource: { uri: globex.resource, tenant: 'globex' } },
        { name: 'ttl over cap', principal: { id: svc.client_id }, action: 'issue', resource: API, context: { ttl: 301 } },
        { name: 'exchange over cap', principal: { type: 'Agent', id: bot.client_id, tenant: 'vendor' }, action: 'exchange', resource: API, context: { ttl: 86_400, delegation } },
      ],
    });
    expect(r.body.results.map((x: any) => [x.name, x.decision, x.policies, x.error])).toEqual([
      ['control', 'allow', ['everything'], undefined],
      ['foreign principal', 'deny', ['bulkhead.cross-tenant'], 'access_denied'],
      ['foreign resource', 'deny', ['bulkhead.cross-tenant'], 'access_denied'],
      ['ttl over cap', 'deny', ['bulkhead.ttl-cap'], 'access_denied'],
      ['exchange over cap', 'deny', ['bulkhead.ttl-cap'], 'access_denied'],
    ]);
    // Nor can a tenant take a baseline policy's id to replace it.
    const taken = await b.admin('PUT', '/tenants/acme/policy', { policy: '@id("bulkhead.ttl-cap")\npermit(principal, action, resource);' }, { allowError: true });
    expect(taken.status).toBe(400);
    expect(taken.body.problems[0].message).toMatch(/reserved/);
  });

  it("an invalid policy is refused with Cedar's message and location, and nothing changes", async () => {
    const v1 = (await setPolicy('acme', DESIGN_EXAMPLE)).body;
    expect(v1).toMatchObject({ tenant: 'acme', version: 1, policy_ids: ['policy0'], text: DESIGN_EXAMPLE });
    const bad = 'permit(principal, action, resource);\npermit(principal, action, resource) when { context.scope.contains("x") };';
    const r = await b.admin('PUT', '/tenants/acme/policy', { policy: bad }, { allowError: true });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_request');
    expect(r.body.error_description).toMatch(/^invalid policy: for policy `policy1`, attribute `scope` in context for Action::"(issue|exchange)" not found at line 2, column \d+/);
    expect(r.body.problems[0]).toMatchObject({ policy_id: 'policy1', help: expect.stringMatching(/scopes/), location: { line: 2, column: expect.any(Number), start: expect.any(Number), end: expect.any(Number) } });
    const syntax = await b.admin('PUT', '/tenants/acme/policy', { policy: 'permit(principal, action, resource' }, { allowError: true });
    expect(syntax.status).toBe(400);
    expect(syntax.body.problems[0].message).toMatch(/unexpected end of input|expected/);
    expect((await b.admin('PUT', '/tenants/acme/policy', { policy: '' }, { allowError: true })).status).toBe(400);
    const huge = await b.admin('PUT', '/tenants/acme/policy', { policy: `// ${'x'.repeat(70_000)}\n${DESIGN_EXAMPLE}` }, { allowError: true });
    expect(huge.status).toBe(400);
    expect(huge.body.error_description).toMatch(/larger than 65536 bytes/);
    expect((await b.admin('PUT', '/tenants/acme/policy', { text: DESIGN_EXAMPLE }, { allowError: true })).status).toBe(400);
    // Nothing changed: the stored policy and what it decides.
    expect((await b.admin('GET', '/tenants/acme/policy')).body).toEqual(v1);
    expect((await cc('acme', svc, { resource: API, scope: 'tickets:write' })).body.error).toBe('invalid_scope');
    expect((await cc('acme', svc, { resource: API, scope: 'tickets:read' })).status).toBe(200);
  });

  it('a policy larger than an ordinary admin body (MAX_BODY_BYTES, 32 KiB) can be set', async () => {
    const rules = Array.from({ length: 200 }, (_, i) => `@id("rule-${i}")\nforbid(principal, action, resource) when { context.scopes.contains("never:${'x'.repeat(100)}:${i}") };`);
    const text = [...rules, DESIGN_EXAMPLE].join('\n');
    expect(text.length).toBeGreaterThan(32 * 1024);
    const r = await setPolicy('acme', text);
    expect(r.body.policy_ids).toHaveLength(201);
    expect((await cc('acme', svc, { resource: API, scope: 'tickets:read' })).status).toBe(200);
  });

  it('the cache is invalidated by policy set and delete: the very next request sees the change', async () => {
    const read = () => cc('acme', svc, { resource: API, scope: 'tickets:read' });
    expect((await read()).status).toBe(200); // no policy, cached
    expect((await setPolicy('acme', '@id("stop")\nforbid(principal, action, resource);')).body.version).toBe(1);
    expect((await read()).body.error).toBe('access_denied');
    expect((await setPolicy('acme', DESIGN_EXAMPLE)).body.version).toBe(2);
    expect((await read()).status).toBe(200);
    expect((await b.admin('DELETE', '/tenants/acme/policy')).body).toMatchObject({ deleted: true, text: null });
    const { res, decision } = await recorded('acme', () => cc('acme', svc, { resource: API, scope: 'tickets:write' }));
    expect(res.status).toBe(200);
    expect(decision).toEqual({ effect: 'allow', policyIds: ['bulkhead.registrations'] });
    expect((await b.admin('DELETE', '/tenants/acme/policy')).body.deleted).toBe(false);
  });

  it("tenant A's policy has no effect on tenant B", async () => {
    await setPolicy('acme', '@id("stop")\nforbid(principal, action, resource);');
    expect((await cc('acme', svc, { resource: API })).body.error).toBe('access_denied');
    const { res, decision } = await recorded('globex', () => cc('globex', globex, { scope: 'tickets:write' }));
    expect(res.status).toBe(200);
    expect(decision).toEqual({ effect: 'allow', policyIds: ['bulkhead.registrations'] });
    expect((await b.admin('GET', '/tenants/globex/policy')).body.text).toBeNull();
  });

  it('the agent credential at home is not decided by a policy; its exchanges are', async () => {
    await setPolicy('vendor', '@id("stop")\nforbid(principal, action, resource);');
    try {
      const cred = await credential(bot); // the credential names no resource and grants nothing
      await setPolicy('acme', '@id("stop")\nforbid(principal, action == Action::"exchange", resource);\npermit(principal, action, resource);');
      const x = await tokenRequest(b, 'acme', { grant_type: TE, subject_token: cred, subject_token_type: AT, resource: API }, { basic: [bot.client_id, bot.client_secret] });
      expect(x.body.error).toBe('access_denied');
    } finally {
      await b.admin('DELETE', '/tenants/vendor/policy');
    }
  });

  it('policy test: rows with expectations, a candidate policy, and bad rows refused', async () => {
    const candidate = await b.admin('POST', '/tenants/acme/policy/test', {
      policy: DESIGN_EXAMPLE,
      requests: [
        { name: 'read', principal: { id: 'x' }, action: 'issue', resource: API, context: { scopes: ['tickets:read'] }, expect: 'allow' },
        { name: 'write', principal: { id: 'x' }, action: 'issue', resource: API, context: { scopes: ['tickets:write'] }, expect: 'allow' },
      ],
    });
    expect(candidate.body).toMatchObject({ tenant: 'acme', policy: 'candidate', version: null, passed: false });
    expect(candidate.body.results).toEqual([
      { row: 0, name: 'read', action: 'issue', principal: 'Client::"x"', resource: API, decision: 'allow', policies: ['policy0'], expect: 'allow', ok: true },
      { row: 1, name: 'write', action: 'issue', principal: 'Client::"x"', resource: API, decision: 'deny', policies: [], error: 'invalid_scope', expect: 'allow', ok: false },
    ]);
    // The candidate was stored nowhere.
    expect((await b.admin('GET', '/tenants/acme/policy')).body.text).toBeNull();
    const none = await b.admin('POST', '/tenants/acme/policy/test', { requests: [{ principal: { id: 'x' }, action: 'issue', resource: API }] });
    expect(none.body).toMatchObject({ policy: 'none', passed: true, results: [{ decision: 'allow', policies: ['bulkhead.registrations'] }] });
    for (const requests of [
      [{ principal: { id: 'x' }, action: 'delete', resource: API }],
      [{ principal: { id: 'x' }, action: 'issue', resource: API, context: { ttl: 'long' } }],
      [{ principal: { id: 'x' }, action: 'issue', resource: API, context: { subject: 'u' } }],
      [],
    ]) {
      const r = await b.admin('POST', '/tenants/acme/policy/test', { requests }, { allowError: true });
      expect(r.status, JSON.stringify(requests)).toBe(400);
    }
  });

  it('the system tenant carries no policy', async () => {
    const r = await b.admin('PUT', '/tenants/system/policy', { policy: DESIGN_EXAMPLE }, { allowError: true });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: 'invalid_request', error_description: 'the system tenant carries no policy: its admin tokens must always be obtainable' });
    expect((await b.admin('GET', '/tenants/system/policy')).body.text).toBeNull();
  });
});
