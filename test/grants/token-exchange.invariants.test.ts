import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, SignJWT, type JWTPayload } from 'jose';
import { DATABASES } from '../support/databases.js';
import { startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

/**
 * The downscoping invariants of DESIGN.md ("Downscoping rules (token exchange)") over real HTTP,
 * on both databases. Each negative case sits next to a positive control in the same test, so
 * that it fails because the invariant broke and not because the setup did. Every response goes
 * through `sane()`: no 5xx, no stack traces, never `invalid_grant`, never a refresh token.
 *
 * Tokens the broker would never mint (expired, with `may_act`, with a prior `act`, wrong `typ`)
 * are signed here with the tenant's real private key, read from the running broker in-process.
 */

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const RT = 'urn:ietf:params:oauth:token-type:refresh_token';

type Agent = { client_id: string; client_secret: string };
type Res = Awaited<ReturnType<typeof tokenRequest>>;
type Signer = { kid: string; alg: string; key: Parameters<SignJWT['sign']>[0] };

const nowS = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every answer of the token endpoint, whatever the case: no 5xx, no internals, RFC 8693 vocabulary. */
function sane(res: Res): Res {
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
  expect(typeof res.body, String(res.body)).toBe('object');
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .+\.(js|ts):\d+|stack|prisma|node_modules/i);
  if (res.status === 200) {
    expect(res.body).not.toHaveProperty('refresh_token');
  } else {
    expect(typeof res.body.error).toBe('string');
    expect(['invalid_grant', 'server_error']).not.toContain(res.body.error);
    expect(res.body).not.toHaveProperty('access_token');
  }
  return res;
}

function granted(res: Res): JWTPayload & Record<string, any> {
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return decodeJwt(res.body.access_token);
}

function refused(res: Res, error: string, status = error === 'invalid_client' ? 401 : 400): void {
  expect(res.body.error, JSON.stringify(res.body)).toBe(error);
  expect(res.status).toBe(status);
}

/** Admin-API helpers and a token crafter bound to one broker. */
function harness(getBroker: () => TestBroker) {
  const b = () => getBroker();
  let n = 0;
  const h = {
    unique: (prefix: string) => `${prefix}-${++n}`,
    async tenant(id: string, extra: Record<string, unknown> = {}) {
      await b().admin('POST', '/tenants', { id, ...extra });
      return id;
    },
    async resource(tenant: string, uri: string, scopes: string[], extra: Record<string, unknown> = {}) {
      await b().admin('POST', `/tenants/${tenant}/resources`, { uri, scopes, ...extra });
      return uri;
    },
    async agent(home: string, name: string, extra: Record<string, unknown> = {}): Promise<Agent> {
      return (await b().admin('POST', `/tenants/${home}/agents`, { name, ...extra })).body;
    },
    async client(tenant: string, body: Record<string, unknown>): Promise<Agent> {
      return (await b().admin('POST', `/tenants/${tenant}/clients`, body)).body;
    },
    async delegate(tenant: string, agent: Agent, scopes: string[], resources: string[], extra: Record<string, unknown> = {}): Promise<string> {
      return (await b().admin('POST', `/tenants/${tenant}/delegations`, { client_id: agent.client_id, scopes, resources, ...extra })).body.id;
    },
    async call(tenant: string, form: Record<string, string | string[]>, auth?: Agent | null): Promise<Res> {
      return sane(await tokenRequest(b(), tenant, form, auth ? { basic: [auth.client_id, auth.client_secret] } : {}));
    },
    /** Client credentials at home without a resource: the agent credential. */
    async credential(home: string, agent: Agent): Promise<string> {
      const res = await h.call(home, { grant_type: 'client_credentials' }, agent);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token;
    },
    async exchange(tenant: string, client: Agent | null, subject: string, extra: Record<string, string | string[]> = {}): Promise<Res> {
      const res = await h.call(tenant, { grant_type: TE, subject_token: subject, subject_token_type: AT, ...extra }, client);
      if (res.status === 200) expect(res.body).toMatchObject({ issued_token_type: AT, token_type: 'Bearer' });
      return res;
    },
    /** The tenant's active signing key, straight from the key service of the running broker. */
    async signer(tenant: string): Promise<Signer> {
      const { signer } = await b().broker.services.keys.loadForIssuer(tenant);
      if (!signer) throw new Error(`no signer for ${tenant}`);
      return { kid: signer.kid, alg: signer.alg, key: await importJWK(signer.privateJwk, signer.alg) };
    },
    /** A key nobody publishes, under the tenant's active kid. */
    async impostor(tenant: string): Promise<Signer> {
      const real = await h.signer(tenant);
      const { privateKey } = await generateKeyPair(real.alg);
      return { ...real, key: privateKey };
    },
    /** An RFC 9068 access token of `tenant`, with whatever claims and header the case needs. */
    async craft(tenant: string, claims: Record<string, unknown>, opts: { typ?: string | null; signer?: Signer } = {}): Promise<string> {
      const s = opts.signer ?? (await h.signer(tenant));
      const now = nowS();
      return new SignJWT({ iss: b().issuer(tenant), tenant_id: tenant, iat: now, exp: now + 300, jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg: s.alg, kid: s.kid, ...(opts.typ === null ? {} : { typ: opts.typ ?? 'at+jwt' }) })
        .sign(s.key);
    },
    /** What the agent credential of `agent` at `home` looks like, as claims. */
    credentialClaims: (home: string, agent: Agent) => ({ sub: agent.client_id, client_id: agent.client_id, aud: b().issuer(home) }),
  };
  return h;
}

describe.each(DATABASES)('token exchange invariants (%s)', (kind) => {
  let b: TestBroker;
  const h = harness(() => b);
  let X: Agent; // the agent under test, home: vendor
  let Y: Agent; // a second agent from the same home, also installed in acme
  const apiA = 'https://api.acme.test/';
  const billingA = 'https://billing.acme.test/';
  const opsA = 'https://ops.acme.test/'; // registered in acme, in no delegation
  const apiB = 'https://api.globex.test/';
  const apiV = 'https://api.vendor.test/';
  let globexService: Agent;

  beforeAll(async () => {
    b = await startTestBroker(kind);
    await h.tenant('vendor');
    await h.tenant('acme');
    await h.tenant('globex');
    X = await h.agent('vendor', 'triage-bot');
    Y = await h.agent('vendor', 'helper-bot');
    await h.resource('acme', apiA, ['tickets:read', 'tickets:write', 'tickets:delete']);
    await h.resource('acme', billingA, ['invoices:read']);
    await h.resource('acme', opsA, ['ops:read']);
    await h.resource('globex', apiB, ['tickets:read', 'tickets:write']);
    await h.resource('vendor', apiV, ['tickets:read']);
    await h.delegate('acme', X, ['tickets:read', 'tickets:write', 'invoices:read'], [apiA, billingA]);
    await h.delegate('acme', Y, ['tickets:read'], [apiA]);
    await h.delegate('globex', X, ['tickets:read'], [apiB]);
    await h.delegate('vendor', X, ['tickets:read'], [apiV]);
    globexService = await h.client('globex', { name: 'globex-svc', scopes: ['tickets:read'], resources: [apiB] });
  });
  afterAll(() => b?.close());

  describe('tenant of the new token == endpoint == subject issuer, or an agent credential from home', () => {
    it('a token of a third tenant (neither the endpoint\'s nor the agent\'s home) is invalid_request', async () => {
      const cred = await h.credential('vendor', X);
      expect(granted(await h.exchange('acme', X, cred, { resource: apiA })).tenant_id).toBe('acme');

      const globexToken = (await h.call('globex', { grant_type: 'client_credentials' }, globexService)).body.access_token as string;
      refused(await h.exchange('acme', X, globexToken, { resource: apiA }), 'invalid_request');
      // Even shaped exactly like X's credential, held by X, signed by globex's real key.
      const globexCred = await h.craft('globex', h.credentialClaims('globex', X));
      const res = await h.exchange('acme', X, globexCred, { resource: apiA });
      refused(res, 'invalid_request');
      expect(res.body.error_description).toMatch(/trusted/); // refused before its claims are even read
      const globexTicket = await h.craft('globex', { sub: X.client_id, client_id: X.client_id, aud: apiA, scope: 'tickets:read' });
      refused(await h.exchange('acme', X, globexTicket, { resource: apiA }), 'invalid_request');
    });

    it('a token minted at A is not re-exchanged at B, though the agent is installed in both', async () => {
      const cred = await h.credential('vendor', X);
      const atAcme = await h.exchange('acme', X, cred, { resource: apiA, scope: 'tickets:read' });
      granted(atAcme);
      granted(await h.exchange('acme', X, atAcme.body.access_token)); // re-exchange at home of the token: fine
      expect(granted(await h.exchange('globex', X, cred, { resource: apiB })).tenant_id).toBe('globex'); // X is installed at globex
      const crossed = await h.exchange('globex', X, atAcme.body.access_token, { resource: apiB });
      refused(crossed, 'invalid_request');
      refused(await h.exchange('globex', X, atAcme.body.access_token), 'invalid_request');
    });

    it('from the agent\'s home only its credential crosses, not a home token for a home resource', async () => {
      const cred = await h.credential('vendor', X);
      const homeToken = await h.exchange('vendor', X, cred, { resource: apiV });
      expect(granted(homeToken)).toMatchObject({ iss: b.issuer('vendor'), aud: apiV });
      const res = await h.exchange('acme', X, homeToken.body.access_token, { resource: apiA });
      refused(res, 'invalid_request');
      expect(res.body.error_description).toMatch(/only its agent credential/);
      granted(await h.exchange('acme', X, cred, { resource: apiA }));
    });
  });

  describe('scopes(new) ⊆ requested ∩ subject ∩ delegation ∩ resource, never widened', () => {
    it('requested binds: exactly the scopes asked for', async () => {
      const res = await h.exchange('acme', X, await h.credential('vendor', X), { resource: apiA, scope: 'tickets:read' });
      expect(granted(res).scope).toBe('tickets:read');
      expect(res.body.scope).toBe('tickets:read');
    });

    it('subject binds: a re-exchange cannot regain a scope the subject lacks', async () => {
      const first = await h.exchange('acme', X, await h.credential('vendor', X), { resource: apiA, scope: 'tickets:read' });
      granted(first);
      expect(granted(await h.exchange('acme', X, first.body.access_token, { scope: 'tickets:read' })).scope).toBe('tickets:read');
      const res = await h.exchange('acme', X, first.body.access_token, { scope: 'tickets:write' }); // delegation and resource allow it
      refused(res, 'invalid_scope');
      expect(res.body.error_description).toMatch(/subject token.*tickets:write/);
      refused(await h.exchange('acme', X, first.body.access_token, { scope: 'tickets:read tickets:write' }), 'invalid_scope');
      // and asking for nothing gives the subject's scopes, not the delegation's
      expect(granted(await h.exchange('acme', X, first.body.access_token)).scope).toBe('tickets:read');
    });

    it('delegation binds: a scope the resource offers but the delegation does not grant', async () => {
      const cred = await h.credential('vendor', X);
      expect(granted(await h.exchange('acme', X, cred, { resource: apiA, scope: 'tickets:write' })).scope).toBe('tickets:write');
      const res = await h.exchange('acme', X, cred, { resource: apiA, scope: 'tickets:delete' });
      refused(res, 'invalid_scope');
      expect(res.body.error_description).toMatch(/allowed for this client.*tickets:delete/);
    });

    it('resource binds: a delegated scope the requested resource does not offer', async () => {
      const cred = await h.credential('vendor', X);
      expect(granted(await h.exchange('acme', X, cred, { resource: billingA, scope: 'invoices:read' })).scope).toBe('invoices:read');
      const res = await h.exchange('acme', X, cred, { resource: apiA, scope: 'invoices:read' });
      refused(res, 'invalid_scope');
      expect(res.body.error_description).toMatch(/offered by the requested resource.*invoices:read/);
    });

    it('a mix of allowed and forbidden scopes is refused, never silently narrowed', async () => {
      const cred = await h.credential('vendor', X);
      refused(await h.exchange('acme', X, cred, { resource: apiA, scope: 'tickets:read tickets:delete' }), 'invalid_scope');
      refused(await h.exchange('acme', X, cred, { resource: apiA, scope: 'tickets:read invoices:read' }), 'invalid_scope');
      refused(await h.exchange('acme', X, cred, { resource: apiA, scope: 'tickets:read nonsense' }), 'invalid_scope');
    });

    it('no scope requested → exactly the intersection', async () => {
      const cred = await h.credential('vendor', X);
      const res = await h.exchange('acme', X, cred, { resource: apiA });
      // delegation {read, write, invoices:read} ∩ apiA {read, write, delete}
      expect(String(granted(res).scope).split(' ').sort()).toEqual(['tickets:read', 'tickets:write']);
      expect(res.body.scope.split(' ').sort()).toEqual(['tickets:read', 'tickets:write']);
      expect(granted(await h.exchange('acme', X, cred, { resource: billingA })).scope).toBe('invoices:read');
      expect(granted(await h.exchange('acme', Y, await h.credential('vendor', Y), { resource: apiA })).scope).toBe('tickets:read');
    });
  });

  describe('aud(new) is one requested resource registered here and within the delegation', () => {
    it('unknown, foreign and undelegated resources are invalid_target', async () => {
      const cred = await h.credential('vendor', X);
      expect(granted(await h.exchange('acme', X, cred, { resource: apiA })).aud).toBe(apiA);
      refused(await h.exchange('acme', X, cred, { resource: 'https://nowhere.test/' }), 'invalid_target');
      refused(await h.exchange('acme', X, cred, { resource: apiB }), 'invalid_target'); // globex's
      refused(await h.exchange('acme', X, cred, { resource: opsA }), 'invalid_target'); // acme's, not delegated
      refused(await h.exchange('acme', X, cred, { resource: 'https://api.acme.test' }), 'invalid_target'); // exact match only
      refused(await h.exchange('acme', X, cred, { resource: b.issuer('acme') }), 'invalid_target');
    });

    it('several resources, or none with several delegated, are invalid_target', async () => {
      const cred = await h.credential('vendor', X);
      refused(await h.exchange('acme', X, cred, { resource: [apiA, billingA] }), 'invalid_target');
      refused(await h.exchange('acme', X, cred), 'invalid_target');
      // Y has one delegated resource: it is the default
      expect(granted(await h.exchange('acme', Y, await h.credential('vendor', Y))).aud).toBe(apiA);
    });

    it('`audience` works like `resource`', async () => {
      const cred = await h.credential('vendor', X);
      const res = await h.exchange('acme', X, cred, { audience: billingA });
      expect(granted(res)).toMatchObject({ aud: billingA, scope: 'invoices:read' });
      refused(await h.exchange('acme', X, cred, { audience: opsA }), 'invalid_target');
      refused(await h.exchange('acme', X, cred, { audience: apiB }), 'invalid_target');
      refused(await h.exchange('acme', X, cred, { audience: [apiA, billingA] }), 'invalid_target');
    });

    it('resource and audience must name the same one', async () => {
      const cred = await h.credential('vendor', X);
      expect(granted(await h.exchange('acme', X, cred, { resource: apiA, audience: apiA })).aud).toBe(apiA);
      refused(await h.exchange('acme', X, cred, { resource: apiA, audience: billingA }), 'invalid_target');
    });

    it('a re-exchange cannot switch to another resource of the delegation', async () => {
      const first = await h.exchange('acme', X, await h.credential('vendor', X), { resource: apiA, scope: 'tickets:read' });
      granted(first);
      expect(granted(await h.exchange('acme', X, first.body.access_token, { resource: apiA })).aud).toBe(apiA);
      expect(granted(await h.exchange('acme', X, first.body.access_token)).aud).toBe(apiA);
      refused(await h.exchange('acme', X, first.body.access_token, { resource: billingA }), 'invalid_target');
      refused(await h.exchange('acme', X, first.body.access_token, { audience: billingA }), 'invalid_target');
    });
  });

  describe('exp(new) ≤ min(subject exp, now + every cap, delegation expires_at)', () => {
    // Every bound is generous except the one under test; the subject is a credential signed with
    // the home key that lives far longer than any cap, unless the subject is what binds.
    const loose = { tenantTtl: 600, agentTtl: 500, delegationTtl: 400, resourceTtl: 300, expiresIn: 3600, subjectExpIn: 3000 };
    it.each([
      ['the tenant cap', { tenantTtl: 100 }, 100],
      ['the client (agent) cap', { agentTtl: 90 }, 90],
      ['the delegation cap', { delegationTtl: 80 }, 80],
      ['the resource cap', { resourceTtl: 70 }, 70],
      ['the delegation expires_at', { expiresIn: 60 }, 60],
      ['the subject token exp', { subjectExpIn: 50 }, 50],
    ] as const)('%s binds', async (name, override, seconds) => {
      const o = { ...loose, ...override };
      const t = await h.tenant(h.unique('exp'), { token_ttl: o.tenantTtl });
      const api = await h.resource(t, `https://api.${t}.test/`, ['tickets:read'], { token_ttl: o.resourceTtl });
      const agent = await h.agent('vendor', `${t}-bot`, { token_ttl: o.agentTtl });
      const expiresAt = new Date(Date.now() + o.expiresIn * 1000);
      await h.delegate(t, agent, ['tickets:read'], [api], { token_ttl: o.delegationTtl, expires_at: expiresAt.toISOString() });
      const subjectExp = nowS() + o.subjectExpIn;
      const cred = await h.craft('vendor', { ...h.credentialClaims('vendor', agent), exp: subjectExp });

      const before = nowS();
      const res = await h.exchange(t, agent, cred, { resource: api });
      const after = nowS();
      const token = granted(res);
      expect(res.body.expires_in).toBe(token.exp! - token.iat!);
      if (name === 'the delegation expires_at') {
        expect(token.exp).toBe(Math.floor(expiresAt.getTime() / 1000));
      } else if (name === 'the subject token exp') {
        expect(token.exp).toBe(subjectExp);
      } else {
        expect(token.exp).toBeGreaterThanOrEqual(before + seconds);
        expect(token.exp).toBeLessThanOrEqual(after + seconds);
        expect(res.body.expires_in).toBe(seconds);
      }
      expect(token.exp! - before).toBeGreaterThanOrEqual(seconds - 1);
      expect(token.exp! - after).toBeLessThanOrEqual(seconds + 1);
    });

    it('a re-exchange never outlives its subject', async () => {
      const first = await h.exchange('acme', X, await h.credential('vendor', X), { resource: apiA });
      const exp1 = granted(first).exp!;
      await sleep(1100);
      const second = granted(await h.exchange('acme', X, first.body.access_token));
      expect(second.exp).toBe(exp1);
    });
  });

  describe('revoked, expired, foreign-signed or wrong-typ tokens are invalid_request (not invalid_grant)', () => {
    it('an expired subject token', async () => {
      const valid = await h.craft('vendor', h.credentialClaims('vendor', X));
      granted(await h.exchange('acme', X, valid, { resource: apiA }));
      const expired = await h.craft('vendor', { ...h.credentialClaims('vendor', X), iat: nowS() - 600, exp: nowS() - 120 });
      const res = await h.exchange('acme', X, expired, { resource: apiA });
      refused(res, 'invalid_request');
      expect(res.body.error_description).toMatch(/expired/);
      // expired a moment ago, within the clock tolerance: still nothing left to grant
      const justExpired = await h.craft('vendor', { ...h.credentialClaims('vendor', X), exp: nowS() - 2 });
      refused(await h.exchange('acme', X, justExpired, { resource: apiA }), 'invalid_request');
    });

    it('a subject token signed by a key that has since been revoked (home key and tenant key)', async () => {
      const home = await h.tenant(h.unique('vendor-r'));
      const t = await h.tenant(h.unique('acme-r'));
      const api = await h.resource(t, `https://api.${t}.test/`, ['tickets:read']);
      const agent = await h.agent(home, 'revoked-bot');
      await h.delegate(t, agent, ['tickets:read'], [api]);

      const cred = await h.credential(home, agent);
      const minted = await h.exchange(t, agent, cred, { resource: api });
      granted(minted);
      granted(await h.exchange(t, agent, minted.body.access_token));

      await b.admin('POST', `/tenants/${home}/keys/${decodeProtectedHeader(cred).kid}/revoke`);
      const res = await h.exchange(t, agent, cred, { resource: api });
      refused(res, 'invalid_request');
      granted(await h.exchange(t, agent, await h.credential(home, agent), { resource: api })); // a fresh credential works

      await b.admin('POST', `/tenants/${t}/keys/${decodeProtectedHeader(minted.body.access_token).kid}/revoke`);
      refused(await h.exchange(t, agent, minted.body.access_token), 'invalid_request');
    });

    it('a subject token signed by a key the issuer does not publish, or by another tenant\'s key', async () => {
      const claims = h.credentialClaims('vendor', X);
      granted(await h.exchange('acme', X, await h.craft('vendor', claims), { resource: apiA }));
      refused(await h.exchange('acme', X, await h.craft('vendor', claims, { signer: await h.impostor('vendor') }), { resource: apiA }), 'invalid_request');
      refused(await h.exchange('acme', X, await h.craft('vendor', claims, { signer: await h.signer('globex') }), { resource: apiA }), 'invalid_request');
      refused(await h.exchange('acme', X, await h.craft('vendor', claims, { signer: await h.signer('acme') }), { resource: apiA }), 'invalid_request');
    });

    it('a subject token whose typ is not at+jwt', async () => {
      const claims = h.credentialClaims('vendor', X);
      granted(await h.exchange('acme', X, await h.craft('vendor', claims, { typ: 'at+jwt' }), { resource: apiA }));
      for (const typ of ['JWT', 'id_token+jwt', 'dpop+jwt', null]) {
        const res = await h.exchange('acme', X, await h.craft('vendor', claims, { typ }), { resource: apiA });
        refused(res, 'invalid_request');
        expect(res.body.error_description).toMatch(/subject_token/);
      }
    });

    it('the same for the actor token: expired, foreign-signed, wrong typ', async () => {
      const cred = await h.credential('vendor', X);
      const claims = h.credentialClaims('vendor', X);
      const withActor = (actor: string) => h.exchange('acme', X, cred, { resource: apiA, actor_token: actor, actor_token_type: AT });
      expect(granted(await withActor(await h.craft('vendor', claims))).act).toEqual({ sub: X.client_id, iss: b.issuer('vendor') });
      const bad = [
        await h.craft('vendor', { ...claims, iat: nowS() - 600, exp: nowS() - 120 }),
        await h.craft('vendor', claims, { signer: await h.impostor('vendor') }),
        await h.craft('vendor', claims, { signer: await h.signer('globex') }),
        await h.craft('vendor', claims, { typ: 'JWT' }),
        await h.craft('globex', h.credentialClaims('globex', X)),
        'not-a-jwt',
      ];
      for (const actor of bad) {
        const res = await withActor(actor);
        refused(res, 'invalid_request');
        expect(res.body.error_description).toMatch(/actor_token/);
      }
    });

    it('garbage subject tokens are invalid_request, never a 5xx', async () => {
      const cred = await h.credential('vendor', X);
      const [hd, pl] = cred.split('.');
      for (const subject of ['', 'x', 'a.b.c', `${hd}.${pl}.`, `${hd}.${pl}.AAAA`, 'x'.repeat(9000), `${cred}.extra`, cred.toUpperCase()]) {
        const res = await h.exchange('acme', X, subject, { resource: apiA });
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.body.error).toBe('invalid_request');
      }
    });
  });

  describe('the exchanging client authenticates and holds the subject token', () => {
    it('no client authentication → 401 invalid_client', async () => {
      const cred = await h.credential('vendor', X);
      granted(await h.exchange('acme', X, cred, { resource: apiA }));
      // No authentication at all: oidc-provider answers 400 invalid_request (the token endpoint's
      // negative suite pins that); RFC 6749 §5.2 would say 401 invalid_client. Either way: no token.
      const none = await h.exchange('acme', null, cred, { resource: apiA });
      expect([['invalid_request', 400], ['invalid_client', 401]]).toContainEqual([none.body.error, none.status]);
      refused(await h.exchange('acme', null, cred, { resource: apiA, client_id: X.client_id }), 'invalid_client');
      refused(await h.exchange('acme', { ...X, client_secret: `${X.client_secret}x` }, cred, { resource: apiA }), 'invalid_client');
    });

    it('X\'s credential presented by Y (both installed) → invalid_request', async () => {
      const credX = await h.credential('vendor', X);
      granted(await h.exchange('acme', X, credX, { resource: apiA }));
      granted(await h.exchange('acme', Y, await h.credential('vendor', Y), { resource: apiA }));
      const res = await h.exchange('acme', Y, credX, { resource: apiA });
      refused(res, 'invalid_request');
      expect(res.body.error_description).toMatch(/may_act/);
      // nor a token X obtained at acme
      const xToken = await h.exchange('acme', X, credX, { resource: apiA, scope: 'tickets:read' });
      refused(await h.exchange('acme', Y, xToken.body.access_token), 'invalid_request');
    });

    it('a token naming Y in may_act is accepted from Y, and the result says Y acts', async () => {
      const mayActY = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: { sub: Y.client_id } });
      const token = granted(await h.exchange('acme', Y, mayActY, { resource: apiA }));
      expect(token).toMatchObject({ sub: X.client_id, client_id: Y.client_id, act: { sub: Y.client_id, iss: b.issuer('vendor') } });

      const withIss = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: { sub: Y.client_id, iss: b.issuer('vendor') } });
      granted(await h.exchange('acme', Y, withIss, { resource: apiA }));
      const wrongIss = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: { sub: Y.client_id, iss: b.issuer('globex') } });
      refused(await h.exchange('acme', Y, wrongIss, { resource: apiA }), 'invalid_request');
      const other = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: { sub: 'ag_someone_else' } });
      refused(await h.exchange('acme', Y, other, { resource: apiA }), 'invalid_request');
      const notObject = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: Y.client_id });
      refused(await h.exchange('acme', Y, notObject, { resource: apiA }), 'invalid_request');
    });
  });

  describe('actor tokens and act chains', () => {
    /** A token of acme for the user alice, issued to acme's portal, that names X in may_act. */
    const alice = (extra: Record<string, unknown> = {}) => h.craft('acme', {
      sub: 'alice', client_id: 'portal', aud: apiA, scope: 'tickets:read tickets:write', may_act: { sub: X.client_id }, ...extra,
    });

    it('the result carries act naming the actor', async () => {
      const cred = await h.credential('vendor', X);
      const viaActorToken = granted(await h.exchange('acme', X, await alice(), { actor_token: cred, actor_token_type: AT }));
      expect(viaActorToken).toMatchObject({ sub: 'alice', client_id: X.client_id, aud: apiA, act: { sub: X.client_id, iss: b.issuer('vendor') } });
      const viaMayAct = granted(await h.exchange('acme', X, await alice()));
      expect(viaMayAct.act).toEqual({ sub: X.client_id, iss: b.issuer('vendor') });
      // the agent's own credential, exchanged without an actor token, carries no act
      expect(granted(await h.exchange('acme', X, cred, { resource: apiA }))).not.toHaveProperty('act');
    });

    it('nested chains on re-exchange keep the inner act; re-exchange never drops act', async () => {
      const upstream = { sub: 'upstream-bot', iss: 'https://upstream.example' };
      const first = await h.exchange('acme', X, await alice({ act: upstream }));
      expect(granted(first).act).toEqual({ sub: X.client_id, iss: b.issuer('vendor'), act: upstream });

      const kept = granted(await h.exchange('acme', X, first.body.access_token, { scope: 'tickets:read' }));
      expect(kept).toMatchObject({ sub: 'alice', scope: 'tickets:read' });
      expect(kept.act).toEqual(granted(first).act);

      const cred = await h.credential('vendor', X);
      const deeper = granted(await h.exchange('acme', X, first.body.access_token, { actor_token: cred, actor_token_type: AT }));
      expect(deeper.act).toEqual({ sub: X.client_id, iss: b.issuer('vendor'), act: granted(first).act });
    });

    it('an actor token must identify this client itself, not someone it holds a token for', async () => {
      const cred = await h.credential('vendor', X);
      const forAlice = await h.exchange('acme', X, await alice()); // sub alice, client_id X
      expect(granted(forAlice)).toMatchObject({ sub: 'alice', client_id: X.client_id });
      expect(granted(await h.exchange('acme', X, cred, { resource: apiA, actor_token: cred, actor_token_type: AT })).act)
        .toEqual({ sub: X.client_id, iss: b.issuer('vendor') });
      // X would otherwise present alice as the actor of X's own token
      const res = await h.exchange('acme', X, cred, { resource: apiA, actor_token: forAlice.body.access_token, actor_token_type: AT });
      refused(res, 'invalid_request');
      // and another client's token is no actor token for X: not Y's credential, and not a token
      // about X that was issued to Y (Y got it through may_act)
      const yCred = await h.credential('vendor', Y);
      refused(await h.exchange('acme', X, cred, { resource: apiA, actor_token: yCred, actor_token_type: AT }), 'invalid_request');
      const mayActY = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: { sub: Y.client_id } });
      const aboutXforY = await h.exchange('acme', Y, mayActY, { resource: apiA });
      expect(granted(aboutXforY)).toMatchObject({ sub: X.client_id, client_id: Y.client_id });
      const stolen = await h.exchange('acme', X, cred, { resource: apiA, actor_token: aboutXforY.body.access_token, actor_token_type: AT });
      refused(stolen, 'invalid_request');
      expect(stolen.body.error_description).toMatch(/not issued to this client/);
    });
  });

  describe('service clients and grant permissions', () => {
    let svc: Agent;
    let plain: Agent;
    let localAgent: Agent;
    beforeAll(async () => {
      svc = await h.client('acme', { name: 'svc-exchanger', scopes: ['tickets:read', 'tickets:write'], resources: [apiA], grant_types: ['client_credentials', TE] });
      plain = await h.client('acme', { name: 'svc-plain', scopes: ['tickets:read'], resources: [apiA] });
      localAgent = await h.agent('acme', 'acme-bot');
    });

    it('a service client with the grant narrows its own token', async () => {
      const own = await h.call('acme', { grant_type: 'client_credentials', resource: apiA }, svc);
      expect(granted(own).scope).toBe('tickets:read tickets:write');
      const narrowed = granted(await h.exchange('acme', svc, own.body.access_token, { scope: 'tickets:read' }));
      expect(narrowed).toMatchObject({ sub: svc.client_id, client_id: svc.client_id, aud: apiA, scope: 'tickets:read', tenant_id: 'acme' });
      expect(narrowed).not.toHaveProperty('act');
      refused(await h.exchange('acme', svc, own.body.access_token, { scope: 'tickets:delete' }), 'invalid_scope');
    });

    it('a service client cannot exchange an agent credential, even one naming it in may_act', async () => {
      const realLocal = await h.credential('acme', localAgent);
      refused(await h.exchange('acme', svc, realLocal, { resource: apiA }), 'invalid_request');
      const local = await h.craft('acme', { ...h.credentialClaims('acme', localAgent), may_act: { sub: svc.client_id } });
      const res = await h.exchange('acme', svc, local, { resource: apiA });
      refused(res, 'invalid_request');
      expect(res.body.error_description).toMatch(/agent credential/);
      const foreign = await h.craft('vendor', { ...h.credentialClaims('vendor', X), may_act: { sub: svc.client_id } });
      refused(await h.exchange('acme', svc, foreign, { resource: apiA }), 'invalid_request');
    });

    it('a client without the token-exchange grant → unauthorized_client', async () => {
      const own = await h.call('acme', { grant_type: 'client_credentials' }, plain);
      granted(own);
      refused(await h.exchange('acme', plain, own.body.access_token), 'unauthorized_client');
    });
  });

  describe('delegation and tenant state', () => {
    it('an expired delegation makes the agent an unknown client', async () => {
      const t = await h.tenant(h.unique('acme-e'));
      const api = await h.resource(t, `https://api.${t}.test/`, ['tickets:read']);
      const agent = await h.agent('vendor', 'short-lived-bot');
      const expiresAt = Date.now() + 3000;
      await h.delegate(t, agent, ['tickets:read'], [api], { expires_at: new Date(expiresAt).toISOString() });
      const cred = await h.credential('vendor', agent);
      expect(granted(await h.exchange(t, agent, cred, { resource: api })).exp).toBe(Math.floor(expiresAt / 1000));
      await sleep(expiresAt - Date.now() + 500);
      const res = await h.exchange(t, agent, cred, { resource: api });
      refused(res, 'invalid_client');
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /); // RFC 6749 §5.2: Basic was tried
      expect(res.body).toEqual((await h.exchange(t, { client_id: 'ag_nobody', client_secret: 'x' }, cred, { resource: api })).body);
    });

    it('a suspended tenant → access_denied', async () => {
      const t = await h.tenant(h.unique('acme-s'));
      const api = await h.resource(t, `https://api.${t}.test/`, ['tickets:read']);
      await h.delegate(t, X, ['tickets:read'], [api]);
      const cred = await h.credential('vendor', X);
      granted(await h.exchange(t, X, cred, { resource: api }));
      await b.admin('POST', `/tenants/${t}/suspend`);
      refused(await h.exchange(t, X, cred, { resource: api }), 'access_denied');
      await b.admin('POST', `/tenants/${t}/resume`);
      granted(await h.exchange(t, X, cred, { resource: api }));
    });

    it('a suspended home tenant → its agent is invalid_client elsewhere', async () => {
      const home = await h.tenant(h.unique('vendor-s'));
      const agent = await h.agent(home, 'suspended-home-bot');
      await h.delegate('acme', agent, ['tickets:read'], [apiA]);
      const cred = await h.credential(home, agent);
      granted(await h.exchange('acme', agent, cred, { resource: apiA }));
      await b.admin('POST', `/tenants/${home}/suspend`);
      const res = await h.exchange('acme', agent, cred, { resource: apiA });
      refused(res, 'invalid_client');
      expect(res.body).toEqual((await h.exchange('acme', { client_id: 'ag_nobody', client_secret: 'x' }, cred, { resource: apiA })).body);
      await b.admin('POST', `/tenants/${home}/resume`);
      granted(await h.exchange('acme', agent, cred, { resource: apiA }));
    });
  });

  describe('token types', () => {
    it('requested_token_type refresh_token → invalid_request; access_token is what is issued', async () => {
      const cred = await h.credential('vendor', X);
      const ok = await h.exchange('acme', X, cred, { resource: apiA, requested_token_type: AT });
      granted(ok);
      expect(ok.body.issued_token_type).toBe(AT);
      refused(await h.exchange('acme', X, cred, { resource: apiA, requested_token_type: RT }), 'invalid_request');
      refused(await h.exchange('acme', X, cred, { resource: apiA, subject_token_type: RT }), 'invalid_request');
      refused(await h.exchange('acme', X, cred, { resource: apiA, actor_token_type: AT }), 'invalid_request');
      refused(await h.exchange('acme', X, cred, { resource: apiA, actor_token: cred }), 'invalid_request');
    });
  });
});

describe.each(DATABASES)('token exchange: act chain depth limit, MAX_ACT_DEPTH=2 (%s)', (kind) => {
  let b: TestBroker;
  const h = harness(() => b);
  let X: Agent;
  const api = 'https://api.acme.test/';

  beforeAll(async () => {
    b = await startTestBroker(kind, { MAX_ACT_DEPTH: '2' });
    await h.tenant('vendor');
    await h.tenant('acme');
    X = await h.agent('vendor', 'triage-bot');
    await h.resource('acme', api, ['tickets:read']);
    await h.delegate('acme', X, ['tickets:read'], [api]);
  });
  afterAll(() => b?.close());

  it('refuses the third actor with invalid_request, and keeps two', async () => {
    const cred = await h.credential('vendor', X);
    const actorToken = { actor_token: cred, actor_token_type: AT };
    const one = granted(await h.exchange('acme', X, cred, { resource: api, ...actorToken }));
    expect(one.act).toEqual({ sub: X.client_id, iss: b.issuer('vendor') });

    const first = await h.exchange('acme', X, cred, { resource: api, ...actorToken });
    const second = await h.exchange('acme', X, first.body.access_token, actorToken);
    const two = granted(second);
    expect(two.act).toEqual({ sub: X.client_id, iss: b.issuer('vendor'), act: { sub: X.client_id, iss: b.issuer('vendor') } });

    const third = await h.exchange('acme', X, second.body.access_token, actorToken);
    refused(third, 'invalid_request');
    expect(third.body.error_description).toMatch(/2 actors/);
    // without a new actor the chain is kept as it is, not dropped to make room
    expect(granted(await h.exchange('acme', X, second.body.access_token)).act).toEqual(two.act);
  });

  it('counts the chain the subject already carries (may_act adds the client)', async () => {
    const upstream = (n: number) => {
      let act: Record<string, unknown> | undefined;
      for (let i = n; i >= 1; i--) act = { sub: `up-${i}`, ...(act ? { act } : {}) };
      return act;
    };
    const subject = (depth: number) => h.craft('acme', { sub: 'alice', client_id: 'portal', aud: api, scope: 'tickets:read', may_act: { sub: X.client_id }, act: upstream(depth) });
    expect(granted(await h.exchange('acme', X, await subject(1))).act).toEqual({ sub: X.client_id, iss: b.issuer('vendor'), act: { sub: 'up-1' } });
    refused(await h.exchange('acme', X, await subject(2)), 'invalid_request');
    // a subject over the limit is refused even with no new actor
    const own = (depth: number) => h.craft('acme', { sub: X.client_id, client_id: X.client_id, aud: api, scope: 'tickets:read', act: upstream(depth) });
    expect(granted(await h.exchange('acme', X, await own(2))).act).toEqual(upstream(2));
    refused(await h.exchange('acme', X, await own(3)), 'invalid_request');
  });
});
