import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { SignJWT, exportJWK, generateKeyPair, createRemoteJWKSet, jwtVerify } from 'jose';
import { randomUUID } from 'node:crypto';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const CC = { grant_type: 'client_credentials' };

describe.each(DATABASES)('token endpoint refusals (%s)', (kind) => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let multi: Awaited<ReturnType<typeof seedTenant>>;
  let globex: Awaited<ReturnType<typeof seedTenant>>;
  let jwtClient: { client_id: string; key: CryptoKey };

  const basic = (c: { client_id: string; client_secret?: string }): [string, string] => [c.client_id, c.client_secret!];

  async function assertion(claims: Record<string, unknown> = {}, key = jwtClient.key) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(jwtClient.client_id)
      .setSubject(jwtClient.client_id)
      .setAudience((claims.aud as string) ?? b.issuer('acme'))
      .setIssuedAt(now)
      .setExpirationTime((claims.exp as number) ?? now + 60)
      .sign(key);
  }
  const jwtAuth = (a: string) => ({
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: a,
  });

  beforeAll(async () => {
    b = await startTestBroker(kind);
    acme = await seedTenant(b, 'acme', { resource: 'https://api.acme.test/' });
    globex = await seedTenant(b, 'globex', { resource: 'https://api.globex.test/' });
    // A client with two resources (so `resource` is required).
    await b.admin('POST', '/tenants/acme/resources', { uri: 'https://billing.acme.test/', scopes: ['invoices:read'] });
    multi = {
      ...acme,
      ...(await b.admin('POST', '/tenants/acme/clients', {
        name: 'multi', scopes: ['tickets:read', 'invoices:read'], resources: ['https://api.acme.test/', 'https://billing.acme.test/'],
      })).body,
    };
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const pub = { ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' };
    const created = await b.admin('POST', '/tenants/acme/clients', {
      name: 'jwt-client', scopes: ['tickets:read'], resources: ['https://api.acme.test/'],
      token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [pub] },
    });
    jwtClient = { client_id: created.body.client_id, key: privateKey };
  });
  afterAll(() => b?.close());

  it('private_key_jwt works with a real client (oauth4webapi), assertion aud = issuer', async () => {
    const issuer = new URL(b.issuer('acme'));
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }));
    const c = { client_id: jwtClient.client_id };
    const res = await oauth.clientCredentialsGrantRequest(as, c, oauth.PrivateKeyJwt(jwtClient.key), new URLSearchParams({ scope: 'tickets:read' }), { [oauth.allowInsecureRequests]: true });
    const tokens = await oauth.processClientCredentialsResponse(as, c, res);
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), { issuer: as.issuer, audience: 'https://api.acme.test/', typ: 'at+jwt' });
    expect(payload.client_id).toBe(jwtClient.client_id);
  });

  const cases: Array<[string, () => Promise<{ status: number; body: any; headers: Headers }>, number, Record<string, unknown>]> = [
    ['wrong secret', () => tokenRequest(b, 'acme', CC, { basic: [acme.client_id, 'bhs_wrong'] }), 401, { error: 'invalid_client' }],
    ['unknown client', () => tokenRequest(b, 'acme', CC, { basic: ['cl_nobody', 'x'] }), 401, { error: 'invalid_client' }],
    ['no client authentication at all (RFC 6749 §5.2)', () => tokenRequest(b, 'acme', CC), 401, { error: 'invalid_client', error_description: 'client authentication failed' }],
    ['client_id without any credential', () => tokenRequest(b, 'acme', { ...CC, client_id: acme.client_id }), 401, { error: 'invalid_client' }],
    ['two authentication methods at once', () => tokenRequest(b, 'acme', { ...CC, client_secret: acme.client_secret! }, { basic: basic(acme) }), 400, { error: 'invalid_request' }],
    ['scope outside the client\'s allowed scopes', () => tokenRequest(b, 'acme', { ...CC, scope: 'tickets:write' }, { basic: basic(acme) }), 400, { error: 'invalid_scope' }],
    ['one bad scope among good ones (no silent dropping)', () => tokenRequest(b, 'acme', { ...CC, scope: 'tickets:read tickets:write' }, { basic: basic(acme) }), 400, { error: 'invalid_scope' }],
    ['scope with invalid characters', () => tokenRequest(b, 'acme', { ...CC, scope: 'tickets:read "x"' }, { basic: basic(acme) }), 400, { error: 'invalid_scope' }],
    ['a resource of another tenant', () => tokenRequest(b, 'acme', { ...CC, resource: globex.resource }, { basic: basic(acme) }), 400, { error: 'invalid_target' }],
    ['a resource of this tenant the client is not registered for', () => tokenRequest(b, 'acme', { ...CC, resource: 'https://billing.acme.test/' }, { basic: basic(acme) }), 400, { error: 'invalid_target' }],
    ['a resource that is not an absolute URI', () => tokenRequest(b, 'acme', { ...CC, resource: 'not a uri' }, { basic: basic(acme) }), 400, { error: 'invalid_target' }],
    ['missing resource when the client has several', () => tokenRequest(b, 'acme', CC, { basic: basic(multi) }), 400, { error: 'invalid_target' }],
    ['two resources at once', () => tokenRequest(b, 'acme', { ...CC, resource: ['https://api.acme.test/', 'https://billing.acme.test/'] }, { basic: basic(multi) }), 400, { error: 'invalid_target' }],
    ['10,000 resource values', () => tokenRequest(b, 'acme', { ...CC, resource: Array.from({ length: 10_000 }, (_, i) => `https://r${i}.test/`) }, { basic: basic(multi) }), 413, { error: 'invalid_request' }],
    ['300 resource values (under the size limit)', () => tokenRequest(b, 'acme', { ...CC, resource: Array.from({ length: 300 }, (_, i) => `https://r${i}.test/`) }, { basic: basic(multi) }), 400, { error: 'invalid_target' }],
    ['missing grant_type', () => tokenRequest(b, 'acme', {}, { basic: basic(acme) }), 400, { error: 'invalid_request' }],
    ['unsupported grant_type', () => tokenRequest(b, 'acme', { grant_type: 'password' }, { basic: basic(acme) }), 400, { error: 'unsupported_grant_type' }],
    ['authorization_code is not served', () => tokenRequest(b, 'acme', { grant_type: 'authorization_code', code: 'x' }, { basic: basic(acme) }), 400, { error: 'unsupported_grant_type' }],
    ['duplicate grant_type', () => tokenRequest(b, 'acme', { grant_type: ['client_credentials', 'client_credentials'] }, { basic: basic(acme) }), 400, { error: 'invalid_request' }],
    ['duplicate scope', () => tokenRequest(b, 'acme', { ...CC, scope: ['tickets:read', 'tickets:read'] }, { basic: basic(acme) }), 400, { error: 'invalid_request' }],
    ['duplicate client_secret', () => tokenRequest(b, 'acme', { ...CC, client_id: acme.client_id, client_secret: [acme.client_secret!, acme.client_secret!] }), 400, { error: 'invalid_request' }],
    ['JSON instead of a form body', () => tokenRequest(b, 'acme', {}, { basic: basic(acme), headers: { 'content-type': 'application/json' }, rawBody: '{"grant_type":"client_credentials"}' }), 400, { error: 'invalid_request' }],
    ['garbage form body', () => tokenRequest(b, 'acme', {}, { basic: basic(acme), rawBody: '%%%&&&===\u0000' }), 400, { error: 'invalid_request' }],
    ['malformed Basic header', () => tokenRequest(b, 'acme', CC, { headers: { authorization: 'Basic !!!notbase64' } }), 400, { error: 'invalid_request' }],
    ['Basic header without a colon', () => tokenRequest(b, 'acme', CC, { headers: { authorization: `Basic ${Buffer.from('justanid').toString('base64')}` } }), 400, { error: 'invalid_request' }],
    ['badly percent-encoded Basic credentials', () => tokenRequest(b, 'acme', CC, { headers: { authorization: `Basic ${Buffer.from('%E0%A4%A:%zz').toString('base64')}` } }), 400, { error: 'invalid_request' }],
    ['oversized body', () => tokenRequest(b, 'acme', { ...CC, scope: 'a'.repeat(40_000) }, { basic: basic(acme) }), 413, { error: 'invalid_request' }],
    ['client assertion with the token endpoint as aud', async () => tokenRequest(b, 'acme', { ...CC, ...jwtAuth(await assertion({ aud: `${b.issuer('acme')}/token` })) }), 401, { error: 'invalid_client' }],
    ['client assertion for another tenant\'s issuer', async () => tokenRequest(b, 'acme', { ...CC, ...jwtAuth(await assertion({ aud: b.issuer('globex') })) }), 401, { error: 'invalid_client' }],
    ['client assertion with a 20 KB jti (the replay store must not hold what a client chooses)', async () => tokenRequest(b, 'acme', { ...CC, ...jwtAuth(await assertion({ jti: 'j'.repeat(20_000) })) }), 401, { error: 'invalid_client' }],
    ['client assertion living too long', async () => tokenRequest(b, 'acme', { ...CC, ...jwtAuth(await assertion({ exp: Math.floor(Date.now() / 1000) + 3600 })) }), 401, { error: 'invalid_client' }],
    ['client assertion signed by an unregistered key', async () => tokenRequest(b, 'acme', { ...CC, ...jwtAuth(await assertion({}, (await generateKeyPair('ES256')).privateKey)) }), 401, { error: 'invalid_client' }],
    ['client assertion that is not a JWT', async () => tokenRequest(b, 'acme', { ...CC, ...jwtAuth('not.a.jwt') }), 400, { error: 'invalid_request' }],
    ['client assertion of this client at another tenant', async () => tokenRequest(b, 'globex', { ...CC, ...jwtAuth(await assertion({ aud: b.issuer('globex') })) }), 401, { error: 'invalid_client' }],
    ['secret-based auth for a private_key_jwt client', () => tokenRequest(b, 'acme', CC, { basic: [jwtClient.client_id, 'anything'] }), 401, { error: 'invalid_client' }],
  ];

  it.each(cases)('%s', async (_name, run, status, body) => {
    const r = await run();
    expect(r.status).toBe(status);
    expect(r.body).toMatchObject(body);
    expect(typeof r.body.error_description === 'string' || r.body.error_description === undefined).toBe(true);
    expect(JSON.stringify(r.body)).not.toMatch(/at .*\.(js|ts):\d+|stack|prisma/i);
    if (status === 401) expect(r.headers.get('www-authenticate'), 'RFC 6749 §5.2: a 401 carries WWW-Authenticate').toMatch(/^Basic realm=/);
  });

  it('a replayed client assertion is refused the second time', async () => {
    const a = await assertion();
    const first = await tokenRequest(b, 'acme', { ...CC, ...jwtAuth(a) });
    expect(first.status).toBe(200);
    const second = await tokenRequest(b, 'acme', { ...CC, ...jwtAuth(a) });
    expect(second.status).toBe(401);
    expect(second.body).toMatchObject({ error: 'invalid_client' });
  });

  it('a client allowed only other grants is unauthorized_client', async () => {
    const c = await b.admin('POST', '/tenants/acme/clients', {
      name: 'exchange-only', scopes: ['tickets:read'], resources: ['https://api.acme.test/'],
      grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    const r = await tokenRequest(b, 'acme', CC, { basic: [c.body.client_id, c.body.client_secret] });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('unauthorized_client');
  });

  it('a disabled client is invalid_client at once, though its secret was just verified', async () => {
    const c = await seedTenant(b, 'acme', { resource: 'https://api.acme.test/', clientName: 'to-disable' });
    expect((await tokenRequest(b, 'acme', CC, { basic: basic(c) })).status).toBe(200);
    await b.admin('POST', `/tenants/acme/clients/${c.client_id}/disable`);
    const r = await tokenRequest(b, 'acme', CC, { basic: basic(c) });
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('invalid_client');
  });

  it('a rotated secret stops working at once; the new one works', async () => {
    const c = await seedTenant(b, 'acme', { resource: 'https://api.acme.test/', clientName: 'to-rotate' });
    expect((await tokenRequest(b, 'acme', CC, { basic: basic(c) })).status).toBe(200);
    const rotated = (await b.admin('POST', `/tenants/acme/clients/${c.client_id}/rotate-secret`)).body;
    expect(rotated.client_secret).not.toBe(c.client_secret);
    expect((await tokenRequest(b, 'acme', CC, { basic: basic(c) })).status).toBe(401);
    expect((await tokenRequest(b, 'acme', CC, { basic: [c.client_id, rotated.client_secret] })).status).toBe(200);
  });

  it('a suspended tenant issues nothing, says why, and keeps its JWKS published', async () => {
    const t = await seedTenant(b, 'suspendme', { clientName: 'svc' });
    expect((await tokenRequest(b, 'suspendme', CC, { basic: basic(t) })).status).toBe(200);
    await b.admin('POST', '/tenants/suspendme/suspend');
    const r = await tokenRequest(b, 'suspendme', CC, { basic: basic(t) });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error: 'access_denied', error_description: 'tenant suspendme is suspended and issues no tokens' });
    const jwks = await fetch(`${b.issuer('suspendme')}/jwks`);
    expect(jwks.status).toBe(200);
    expect(((await jwks.json()) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
    await b.admin('POST', '/tenants/suspendme/resume');
    expect((await tokenRequest(b, 'suspendme', CC, { basic: basic(t) })).status).toBe(200);
  });

  it('lifetime is the most restrictive of tenant, resource and client caps', async () => {
    const t = await seedTenant(b, 'ttl', { tokenTtl: 120, clientName: 'no-cap' });
    expect((await tokenRequest(b, 'ttl', CC, { basic: basic(t) })).body.expires_in).toBe(120);
    const r = await seedTenant(b, 'ttl', { resource: 'https://short.ttl.test/', resourceTtl: 60, clientName: 'res-cap' });
    expect((await tokenRequest(b, 'ttl', CC, { basic: basic(r) })).body.expires_in).toBe(60);
    const c = await seedTenant(b, 'ttl', { resource: 'https://short.ttl.test/', clientTtl: 30, clientName: 'client-cap' });
    const res = await tokenRequest(b, 'ttl', CC, { basic: basic(c) });
    expect(res.body.expires_in).toBe(30);
    const [, payload] = (res.body.access_token as string).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    expect(claims.exp - claims.iat).toBe(30);
  });

  it.each([
    ['/t/nosuchtenant/token', 'POST'],
    ['/t/nosuchtenant/jwks', 'GET'],
    ['/t/nosuchtenant/.well-known/openid-configuration', 'GET'],
    ['/.well-known/oauth-authorization-server/t/nosuchtenant', 'GET'],
    ['/t/acme/auth', 'GET'],
    ['/t/acme/userinfo', 'GET'],
    ['/t/acme/reg', 'POST'],
    ['/t/ACME/token', 'POST'],
    ['/t/acme%2F..%2Fglobex/token', 'POST'],
    ['/nothing/here', 'GET'],
    ['/t/', 'GET'],
  ])('%s (%s) is the same JSON 404 as any unknown path', async (path, method) => {
    const r = await fetch(`${b.url}${path}`, { method, ...(method === 'POST' ? { body: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded' } } : {}) });
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: 'not_found', error_description: 'not found' });
  });

  it('a malformed URL is a 400, not a crash', async () => {
    const r = await fetch(`${b.url}/admin/tenants/%E0%A4%A`, { headers: { authorization: `Bearer ${await b.adminToken()}` } });
    expect(r.status).toBeLessThan(500);
  });
});
