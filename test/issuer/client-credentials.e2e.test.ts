import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;

describe.each(DATABASES)('client credentials end to end (%s)', (kind) => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let globex: Awaited<ReturnType<typeof seedTenant>>;

  beforeAll(async () => {
    b = await startTestBroker(kind);
    // The same client name, resource shape and scopes in two tenants.
    acme = await seedTenant(b, 'acme', { resource: 'https://tickets.example/', clientName: 'worker' });
    globex = await seedTenant(b, 'globex', { resource: 'https://tickets.example/', clientName: 'worker' });
  });
  afterAll(() => b?.close());

  it('discovery → client_credentials → a token that verifies with every RFC 9068 claim (oauth4webapi)', async () => {
    const issuer = new URL(b.issuer('acme'));
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    expect(as.issuer).toBe(b.issuer('acme'));
    expect(as.token_endpoint).toBe(`${b.issuer('acme')}/token`);
    expect(as.jwks_uri).toBe(`${b.issuer('acme')}/jwks`);
    expect(as.grant_types_supported).toContain('client_credentials');
    expect(as).not.toHaveProperty('authorization_endpoint');

    const c: oauth.Client = { client_id: acme.client_id };
    const res = await oauth.clientCredentialsGrantRequest(
      as, c, oauth.ClientSecretBasic(acme.client_secret!),
      new URLSearchParams({ scope: 'tickets:read', resource: acme.resource }), insecure,
    );
    const tokens = await oauth.processClientCredentialsResponse(as, c, res);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.expires_in).toBe(300);
    expect(tokens.scope).toBe('tickets:read');

    const before = Math.floor(Date.now() / 1000);
    const jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer: b.issuer('acme'),
      audience: acme.resource,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({
      iss: b.issuer('acme'),
      sub: acme.client_id,
      aud: acme.resource,
      client_id: acme.client_id,
      tenant_id: 'acme',
      scope: 'tickets:read',
    });
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(Math.abs(payload.iat! - before)).toBeLessThan(5);
    expect(Object.keys(payload).sort()).toEqual(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub', 'tenant_id']);
  });

  it('works with openid-client and client_secret_post-free defaults, with resource defaulted to the only one', async () => {
    const config = await client.discovery(new URL(b.issuer('globex')), globex.client_id, globex.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
      algorithm: 'oauth2',
    });
    const tokens = await client.clientCredentialsGrant(config, { scope: 'tickets:read' });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${b.issuer('globex')}/jwks`)), {
      issuer: b.issuer('globex'),
      audience: globex.resource,
      typ: 'at+jwt',
    });
    expect(payload.tenant_id).toBe('globex');
  });

  it("a token of tenant A verifies neither against B's JWKS nor B's issuer", async () => {
    const r = await tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope: 'tickets:read' }, { basic: [acme.client_id, acme.client_secret!] });
    expect(r.status).toBe(200);
    const token = r.body.access_token as string;
    const globexJwks = createRemoteJWKSet(new URL(`${b.issuer('globex')}/jwks`));
    // Different keys: B's JWKS does not hold A's kid.
    await expect(jwtVerify(token, globexJwks)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    // Different issuer: even with A's keys, a verifier for B refuses A's `iss`.
    const acmeJwks = createRemoteJWKSet(new URL(`${b.issuer('acme')}/jwks`));
    await expect(jwtVerify(token, acmeJwks, { issuer: b.issuer('globex') })).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' });
    const globexKids = ((await (await fetch(`${b.issuer('globex')}/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    expect(globexKids).not.toContain(decodeProtectedHeader(token).kid);
  });

  it("A's credentials at B's token endpoint are invalid_client, exactly like an unknown client", async () => {
    const foreign = await tokenRequest(b, 'globex', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] });
    const unknown = await tokenRequest(b, 'globex', { grant_type: 'client_credentials' }, { basic: ['cl_doesnotexist', 'whatever'] });
    for (const r of [foreign, unknown]) {
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      expect(r.headers.get('www-authenticate')).toMatch(/^Basic realm="http:\/\/127\.0\.0\.1:\d+\/t\/globex", error="invalid_client"/);
    }
  });

  it('serves RFC 8414 metadata at both paths, identical', async () => {
    const a = (await (await fetch(`${b.url}/t/acme/.well-known/openid-configuration`)).json()) as { issuer: string };
    const c = await (await fetch(`${b.url}/.well-known/oauth-authorization-server/t/acme`)).json();
    expect(c).toEqual(a);
    expect(a.issuer).toBe(b.issuer('acme'));
  });
});
