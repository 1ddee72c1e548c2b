import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';

/** RFC 7662 introspection and RFC 7009 revocation of Bulkhead's JWT access tokens, over HTTP. */
describe.each(DATABASES)('introspection and revocation (%s)', (kind) => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let rs: Awaited<ReturnType<typeof seedTenant>>;
  let globex: Awaited<ReturnType<typeof seedTenant>>;
  let agent: { client_id: string; client_secret: string };
  let delegation: string;

  const basic = (c: { client_id: string; client_secret?: string }): [string, string] => [c.client_id, c.client_secret!];
  async function post(tenant: string, endpoint: 'introspect' | 'revoke', form: Record<string, string>, auth?: [string, string]) {
    const res = await fetch(`${b.url}/t/${tenant}/${endpoint}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(auth ? { authorization: `Basic ${Buffer.from(`${auth[0]}:${auth[1]}`).toString('base64')}` } : {}),
      },
      body: new URLSearchParams(form).toString(),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  }
  const introspect = (tenant: string, token: string, auth = basic(rs)) => post(tenant, 'introspect', { token }, auth);
  async function cc(tenant: string, c: { client_id: string; client_secret?: string }, form: Record<string, string> = {}): Promise<string> {
    const r = await tokenRequest(b, tenant, { grant_type: 'client_credentials', ...form }, { basic: basic(c) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.access_token;
  }
  async function exchange(subject: string, form: Record<string, string> = {}) {
    return tokenRequest(b, 'acme', { grant_type: TE, subject_token: subject, subject_token_type: AT, ...form }, { basic: basic(agent) });
  }

  beforeAll(async () => {
    b = await startTestBroker(kind);
    acme = await seedTenant(b, 'acme');
    // The resource server introspects as its own client of acme.
    rs = await seedTenant(b, 'acme', { clientName: 'tickets-api' });
    globex = await seedTenant(b, 'globex');
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'bot' })).body;
    delegation = (await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read', 'tickets:write'], resources: [acme.resource] })).body.id;
  });
  afterAll(() => b?.close());

  it('metadata names both endpoints (RFC 8414), so clients can find them', async () => {
    const meta = (await (await fetch(`${b.issuer('acme')}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({
      introspection_endpoint: `${b.issuer('acme')}/introspect`,
      revocation_endpoint: `${b.issuer('acme')}/revoke`,
      introspection_endpoint_auth_methods_supported: expect.arrayContaining(['client_secret_basic', 'private_key_jwt']),
    });
  });

  it('an active token of this tenant is introspected with its claims', async () => {
    const token = await cc('acme', acme);
    const r = await introspect('acme', token);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const claims = decodeJwt(token);
    expect(r.body).toEqual({
      active: true, iss: b.issuer('acme'), sub: acme.client_id, aud: acme.resource, client_id: acme.client_id, tenant_id: 'acme',
      scope: 'tickets:read', iat: claims.iat, exp: claims.exp, jti: claims.jti, token_type: 'Bearer',
    });
  });

  it("another tenant's valid token, garbage and an expired-looking token are all just {active:false}", async () => {
    const foreign = await cc('globex', globex);
    expect((await introspect('globex', foreign, basic(globex))).body.active).toBe(true);
    for (const token of [foreign, 'garbage', `${foreign.slice(0, -4)}AAAA`]) {
      const r = await introspect('acme', token);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ active: false });
    }
  });

  it('the caller must authenticate as a client of this tenant: 401 invalid_client with a challenge', async () => {
    const token = await cc('acme', acme);
    for (const auth of [undefined, [rs.client_id, 'wrong'] as [string, string], basic(globex)]) {
      const r = await post('acme', 'introspect', { token }, auth);
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_client');
      expect(r.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    }
  });

  it('a client revokes its own token (RFC 7009): inactive at once, and refused as a subject token', async () => {
    const first = (await exchange(await cc('vendor', agent))).body.access_token;
    expect((await introspect('acme', first)).body.active).toBe(true);
    const r = await post('acme', 'revoke', { token: first }, basic(agent));
    expect(r.status).toBe(200);
    expect((await introspect('acme', first)).body).toEqual({ active: false });
    const again = await exchange(first);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'invalid_request', error_description: 'subject_token: has been revoked' });
    // Revoking garbage or an already revoked token is a 200 too (RFC 7009 §2.2).
    expect((await post('acme', 'revoke', { token: first }, basic(agent))).status).toBe(200);
    expect((await post('acme', 'revoke', { token: 'garbage' }, basic(agent))).status).toBe(200);
  });

  it("a client cannot revoke another client's token", async () => {
    const token = await cc('acme', acme);
    const r = await post('acme', 'revoke', { token }, basic(rs));
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('unauthorized_client');
    expect((await introspect('acme', token)).body.active).toBe(true);
  });

  it('cascade: revoking the agent credential at home makes every token exchanged from it inactive', async () => {
    const credential = await cc('vendor', agent);
    const child = (await exchange(credential, { scope: 'tickets:read tickets:write' })).body.access_token;
    const grandchild = (await exchange(child, { scope: 'tickets:read' })).body.access_token;
    expect(decodeJwt(grandchild).exchanged_from).toEqual([
      expect.objectContaining({ tenant_id: 'acme', jti: decodeJwt(child).jti }),
      expect.objectContaining({ tenant_id: 'vendor', jti: decodeJwt(credential).jti }),
    ]);
    expect((await introspect('acme', grandchild)).body.active).toBe(true);
    expect((await post('vendor', 'revoke', { token: credential }, basic(agent))).status).toBe(200);
    expect((await introspect('acme', child)).body.active).toBe(false);
    expect((await introspect('acme', grandchild)).body.active).toBe(false);
    // A fresh credential is unaffected.
    const fresh = (await exchange(await cc('vendor', agent))).body.access_token;
    expect((await introspect('acme', fresh)).body.active).toBe(true);
  });

  it('revoke-all for a client: everything it obtained so far is inactive, later tokens are not', async () => {
    const before = await cc('acme', acme);
    await b.broker.services.revocations.revokeAllOf('acme', acme.client_id);
    expect((await introspect('acme', before)).body.active).toBe(false);
    // Straight away, in the same second: the new token is not born revoked (minting waits the
    // cutoff's second out).
    const after = await cc('acme', acme);
    expect(decodeJwt(after).iat).toBeGreaterThan(decodeJwt(before).iat!);
    expect((await introspect('acme', after)).body.active).toBe(true);
  });

  it('disabling a client or revoking a delegation makes the tokens it obtained inactive', async () => {
    const viaAgent = (await exchange(await cc('vendor', agent))).body.access_token;
    const other = await seedTenant(b, 'acme', { clientName: 'soon-disabled' });
    const ofClient = await cc('acme', other);
    expect((await introspect('acme', viaAgent)).body.active).toBe(true);
    expect((await introspect('acme', ofClient)).body.active).toBe(true);
    await b.admin('POST', `/tenants/acme/clients/${other.client_id}/disable`);
    await b.admin('POST', `/tenants/acme/delegations/${delegation}/revoke`);
    expect((await introspect('acme', ofClient)).body.active).toBe(false);
    expect((await introspect('acme', viaAgent)).body.active).toBe(false);
    // Installing the agent again does not bring the tokens of the revoked installation back.
    await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [acme.resource] });
    expect((await introspect('acme', viaAgent)).body.active).toBe(false);
  });

  it('expired revocations are cleaned up, from the database and from memory', async () => {
    const { revocations } = b.broker.services;
    await revocations.cleanup();
    const base = revocations.size;
    const past = Math.floor(Date.now() / 1000) - 1;
    await revocations.revoke('acme', 'expired-jti-1', past);
    await revocations.revoke('acme', 'expired-jti-2', past);
    expect(await b.broker.services.db.prisma.revokedToken.count({ where: { jti: { startsWith: 'expired-jti-' } } })).toBe(2);
    expect(await revocations.cleanup()).toBe(2);
    expect(revocations.size).toBe(base);
    expect(await b.broker.services.db.prisma.revokedToken.count({ where: { jti: { startsWith: 'expired-jti-' } } })).toBe(0);
  });
});
