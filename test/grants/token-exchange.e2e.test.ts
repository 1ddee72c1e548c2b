import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * The agent story over real HTTP: an agent registered at its vendor's tenant gets its agent
 * credential there, and trades it at a customer tenant for a token bound to that tenant, one
 * resource, fewer scopes and a shorter life. oauth4webapi plays the agent; jose verifies.
 */
describe.each(DATABASES)('token exchange: the agent story (%s)', (kind) => {
  let b: TestBroker;
  let agent: { client_id: string; client_secret: string };
  let delegationA: string;
  const apiA = 'https://api.acme.test/';
  const apiB = 'https://api.globex.test/';
  const billingA = 'https://billing.acme.test/';

  async function as(tenant: string) {
    const issuer = new URL(b.issuer(tenant));
    return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  }

  async function agentCredential(): Promise<string> {
    const home = await as('vendor');
    const c: oauth.Client = { client_id: agent.client_id };
    const res = await oauth.clientCredentialsGrantRequest(home, c, oauth.ClientSecretBasic(agent.client_secret), new URLSearchParams(), insecure);
    return (await oauth.processClientCredentialsResponse(home, c, res)).access_token;
  }

  async function exchange(tenant: string, subject: string, extra: Record<string, string> = {}) {
    return tokenRequest(b, tenant, { grant_type: TE, subject_token: subject, subject_token_type: AT, ...extra }, { basic: [agent.client_id, agent.client_secret] });
  }

  beforeAll(async () => {
    b = await startTestBroker(kind);
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'triage-bot' })).body;
    await seedTenant(b, 'acme', { resource: apiA, resourceScopes: ['tickets:read', 'tickets:write', 'tickets:delete'] });
    await b.admin('POST', '/tenants/acme/resources', { uri: billingA, scopes: ['invoices:read'] });
    await seedTenant(b, 'globex', { resource: apiB });
    delegationA = (await b.admin('POST', '/tenants/acme/delegations', {
      client_id: agent.client_id,
      scopes: ['tickets:read', 'tickets:write'],
      resources: [apiA],
      token_ttl: 120,
    })).body.id;
  });
  afterAll(() => b?.close());

  it('the agent credential proves who the agent is and grants nothing', async () => {
    const cred = await agentCredential();
    const { payload, protectedHeader } = await jwtVerify(cred, createRemoteJWKSet(new URL(`${b.issuer('vendor')}/jwks`)), {
      issuer: b.issuer('vendor'),
      audience: b.issuer('vendor'),
      typ: 'at+jwt',
    });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ sub: agent.client_id, client_id: agent.client_id, tenant_id: 'vendor' });
    expect(payload).not.toHaveProperty('scope');
  });

  it('agent credential → acme token for tickets:read on acme\'s API, verified with acme\'s JWKS', async () => {
    const cred = await agentCredential();
    const acme = await as('acme');
    expect(acme.grant_types_supported).toContain(TE);
    expect(acme.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'PS256']));
    const c: oauth.Client = { client_id: agent.client_id };
    const res = await oauth.genericTokenEndpointRequest(acme, c, oauth.ClientSecretBasic(agent.client_secret), TE, new URLSearchParams({
      subject_token: cred,
      subject_token_type: AT,
      resource: apiA,
      scope: 'tickets:read',
    }), insecure);
    const tokens = await oauth.processGenericTokenEndpointResponse(acme, c, res);
    expect(tokens).toMatchObject({ issued_token_type: AT, token_type: 'bearer', scope: 'tickets:read' });
    expect(tokens.expires_in).toBeLessThanOrEqual(120);

    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(acme.jwks_uri!)), {
      issuer: b.issuer('acme'),
      audience: apiA,
      typ: 'at+jwt',
    });
    const subject = decodeJwt(cred);
    expect(payload).toMatchObject({ tenant_id: 'acme', client_id: agent.client_id, sub: agent.client_id, scope: 'tickets:read', aud: apiA });
    expect(payload.jti).not.toBe(subject.jti);
    expect(payload.exp!).toBeLessThanOrEqual(subject.exp!);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(120);
    // The new token is useless at globex: other keys, other issuer.
    await expect(jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${b.issuer('globex')}/jwks`)))).rejects.toThrow();
  });

  it('the same credential cannot get tenant B (no delegation): invalid_client, as for an unknown client', async () => {
    const res = await exchange('globex', await agentCredential(), { resource: apiB });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    const unknown = await tokenRequest(b, 'globex', { grant_type: TE, subject_token: 'x', subject_token_type: AT }, { basic: ['ag_nobody', 'nothing'] });
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(res.body);
  });

  it('cannot get a scope outside the delegation, a resource outside it, or B\'s resource', async () => {
    const cred = await agentCredential();
    expect((await exchange('acme', cred, { resource: apiA, scope: 'tickets:delete' })).body.error).toBe('invalid_scope');
    expect((await exchange('acme', cred, { resource: billingA })).body.error).toBe('invalid_target');
    expect((await exchange('acme', cred, { resource: apiB })).body.error).toBe('invalid_target');
  });

  it('re-exchange narrows further and never widens', async () => {
    const first = await exchange('acme', await agentCredential(), { resource: apiA, scope: 'tickets:read tickets:write' });
    expect(first.status).toBe(200);
    const narrower = await exchange('acme', first.body.access_token, { scope: 'tickets:read' });
    expect(narrower.status).toBe(200);
    expect(decodeJwt(narrower.body.access_token)).toMatchObject({ scope: 'tickets:read', aud: apiA, tenant_id: 'acme' });
    expect(decodeJwt(narrower.body.access_token).exp!).toBeLessThanOrEqual(decodeJwt(first.body.access_token).exp!);
    const wider = await exchange('acme', narrower.body.access_token, { scope: 'tickets:read tickets:write' });
    expect(wider.status).toBe(400);
    expect(wider.body.error).toBe('invalid_scope');
  });

  it('a revoked delegation stops the very next exchange', async () => {
    const cred = await agentCredential();
    expect((await exchange('acme', cred, { resource: apiA })).status).toBe(200);
    await b.admin('POST', `/tenants/acme/delegations/${delegationA}/revoke`);
    const res = await exchange('acme', cred, { resource: apiA });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });
});
