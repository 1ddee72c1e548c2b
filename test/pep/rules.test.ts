import { describe, expect, it } from 'vitest';
import { challenge, PepError, protectedResourceMetadata, protectedResourceMetadataUrl, type PepErrorCode } from '../../src/pep/index.js';
import { grantedScopes, missingScopes, normaliseBrokerUrl, parseAuthorization, tenantOfIssuer } from '../../src/pep/rules.js';
import { createVerifier } from '../../src/pep/verifier.js';

const broker = 'https://bulkhead.example';

describe('pep rules', () => {
  it.each([
    [`${broker}/t/acme`, 'acme'],
    [`${broker}/t/acme/`, undefined],
    [`${broker}/t/acme/token`, undefined],
    [`${broker}/t/ACME`, undefined],
    [`${broker}/t/`, undefined],
    [`${broker}x/t/acme`, undefined],
    [`https://evil.example/t/acme`, undefined],
    [42, undefined],
    [undefined, undefined],
  ])('tenantOfIssuer(%j) = %j', (iss, tenant) => {
    expect(tenantOfIssuer(broker, iss)).toBe(tenant);
  });

  it.each([
    ['https://bulkhead.example', 'https://bulkhead.example'],
    ['https://bulkhead.example/', 'https://bulkhead.example'],
    ['https://bulkhead.example/base//', 'https://bulkhead.example/base'],
  ])('normaliseBrokerUrl(%s) = %s', (input, out) => {
    expect(normaliseBrokerUrl(input)).toBe(out);
  });

  it('normaliseBrokerUrl refuses queries, fragments and credentials', () => {
    expect(() => normaliseBrokerUrl('https://b.example/?x=1')).toThrow(TypeError);
    expect(() => normaliseBrokerUrl('https://b.example/#x')).toThrow(TypeError);
    expect(() => normaliseBrokerUrl('https://u:p@b.example/')).toThrow(TypeError);
  });

  it.each([
    ['a b', ['a'], []],
    ['a b', ['a', 'b'], []],
    ['a', ['a', 'b'], ['b']],
    ['ab', ['a'], ['a']],
    ['a  b', ['b'], []],
    [undefined, ['a'], ['a']],
    [['a'], ['a'], ['a']],
    ['a', [], []],
  ])('missingScopes(%j, %j) = %j', (scope, required, missing) => {
    expect(missingScopes(scope, required)).toEqual(missing);
  });

  it('grantedScopes ignores non-strings', () => {
    expect(grantedScopes('x y')).toEqual(['x', 'y']);
    expect(grantedScopes({ x: 1 })).toEqual([]);
  });

  it.each([
    [[], undefined],
    [['Bearer abc.def-ghi_~+/=='], { scheme: 'Bearer', token: 'abc.def-ghi_~+/==' }],
    [['bearer abc'], { scheme: 'Bearer', token: 'abc' }],
    [['DPoP abc'], { scheme: 'DPoP', token: 'abc' }],
    [['dpop abc'], { scheme: 'DPoP', token: 'abc' }],
    [['Basic dXNlcjpwYXNz'], undefined],
    [['Negotiate'], undefined],
  ])('parseAuthorization(%j) = %j', (values, result) => {
    expect(parseAuthorization(values)).toEqual(result);
  });

  it.each([
    [['Bearer a', 'Bearer b']],
    [['Bearer']],
    [['Bearer ']],
    [['Bearer a b']],
    [['Bearer a, Bearer b']],
    [['Bearer a=b']],
    [['DPoP "a"']],
  ])('parseAuthorization(%j) is invalid_request', (values) => {
    expect(() => parseAuthorization(values)).toThrow(expect.objectContaining({ code: 'ERR_PEP_INVALID_REQUEST', status: 400 }));
  });

  const table: Array<[PepErrorCode, number, string | undefined]> = [
    ['ERR_PEP_TOKEN_MISSING', 401, undefined],
    ['ERR_PEP_INVALID_REQUEST', 400, 'invalid_request'],
    ['ERR_PEP_INVALID_TOKEN', 401, 'invalid_token'],
    ['ERR_PEP_WRONG_ISSUER', 401, 'invalid_token'],
    ['ERR_PEP_WRONG_AUDIENCE', 401, 'invalid_token'],
    ['ERR_PEP_WRONG_TENANT', 401, 'invalid_token'],
    ['ERR_PEP_EXPIRED', 401, 'invalid_token'],
    ['ERR_PEP_NOT_YET_VALID', 401, 'invalid_token'],
    ['ERR_PEP_INSUFFICIENT_SCOPE', 403, 'insufficient_scope'],
    ['ERR_PEP_DPOP_REQUIRED', 401, 'invalid_token'],
    ['ERR_PEP_TOKEN_NOT_BOUND', 401, 'invalid_token'],
    ['ERR_PEP_DPOP_INVALID', 401, 'invalid_dpop_proof'],
    ['ERR_PEP_REVOKED', 401, 'invalid_token'],
    ['ERR_PEP_UNAVAILABLE', 503, 'temporarily_unavailable'],
  ];
  it.each(table)('%s → %i %s', (code, status, error) => {
    const err = new PepError(code, 'why');
    expect(err).toMatchObject({ code, status, error, name: 'PepError', message: 'why' });
    const answer = challenge(err);
    expect(answer.status).toBe(status);
    expect(answer.body).toEqual({ ...(error ? { error } : {}), error_description: 'why' });
    expect(answer.headers['Cache-Control']).toBe('no-store');
  });

  it('challenge: RFC 6750 §3 Bearer with realm, error, description and scope', () => {
    const err = new PepError('ERR_PEP_INSUFFICIENT_SCOPE', 'the access token lacks a required scope', { scope: ['tickets:read', 'tickets:write'] });
    expect(challenge(err, { realm: 'tickets' })).toEqual({
      status: 403,
      headers: {
        'Cache-Control': 'no-store',
        'WWW-Authenticate': 'Bearer realm="tickets", error="insufficient_scope", error_description="the access token lacks a required scope", scope="tickets:read tickets:write"',
      },
      body: { error: 'insufficient_scope', error_description: 'the access token lacks a required scope', scope: 'tickets:read tickets:write' },
    });
  });

  it('challenge: a missing token carries no error (RFC 6750 §3.1); DPoP offered beside Bearer; resource_metadata', () => {
    const err = new PepError('ERR_PEP_TOKEN_MISSING', 'an access token is required', { dpopAlgs: ['ES256', 'EdDSA'] });
    expect(challenge(err, { realm: 'api', resourceMetadata: 'https://rs.example/.well-known/oauth-protected-resource' }).headers['WWW-Authenticate'])
      .toBe('Bearer realm="api", resource_metadata="https://rs.example/.well-known/oauth-protected-resource", DPoP algs="ES256 EdDSA"');
    expect(challenge(new PepError('ERR_PEP_TOKEN_MISSING', 'x')).headers['WWW-Authenticate']).toBe('Bearer');
  });

  it('challenge: DPoP errors use the DPoP scheme with algs (RFC 9449 §7.1)', () => {
    const err = new PepError('ERR_PEP_DPOP_INVALID', 'DPoP proof ath does not match the access token', { scheme: 'DPoP', dpopAlgs: ['ES256'] });
    expect(challenge(err).headers['WWW-Authenticate']).toBe('DPoP error="invalid_dpop_proof", error_description="DPoP proof ath does not match the access token", algs="ES256"');
  });

  it('challenge: quotes and backslashes never reach the header; 503 has Retry-After and no challenge', () => {
    const err = new PepError('ERR_PEP_INVALID_TOKEN', 'bad "token" \\ here\r\n');
    expect(challenge(err).headers['WWW-Authenticate']).toBe('Bearer error="invalid_token", error_description="bad token  here"');
    const down = challenge(new PepError('ERR_PEP_UNAVAILABLE', 'down'));
    expect(down.headers).toEqual({ 'Cache-Control': 'no-store', 'Retry-After': '5' });
  });

  it.each([
    ['https://rs.example', 'https://rs.example/.well-known/oauth-protected-resource'],
    ['https://rs.example/', 'https://rs.example/.well-known/oauth-protected-resource'],
    ['https://rs.example/tenants/acme/tickets', 'https://rs.example/.well-known/oauth-protected-resource/tenants/acme/tickets'],
    ['https://rs.example:8443/a/?x=1', 'https://rs.example:8443/.well-known/oauth-protected-resource/a/?x=1'],
  ])('protectedResourceMetadataUrl(%s) = %s (RFC 9728 §3.1)', (resource, url) => {
    expect(protectedResourceMetadataUrl(resource)).toBe(url);
  });

  it('protectedResourceMetadata: RFC 9728 §2 members, DPoP only when asked', () => {
    const base = { resource: 'https://rs.example/tenants/acme/tickets', brokerUrl: `${broker}/`, tenant: 'acme' };
    expect(protectedResourceMetadata({ ...base, scopes: ['tickets:read'] })).toEqual({
      resource: base.resource,
      authorization_servers: [`${broker}/t/acme`],
      scopes_supported: ['tickets:read'],
      bearer_methods_supported: ['header'],
    });
    const dpop = protectedResourceMetadata({ ...base, dpop: { required: true } });
    expect(dpop.dpop_bound_access_tokens_required).toBe(true);
    expect(dpop.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'RS256', 'PS256']));
    expect(dpop.dpop_signing_alg_values_supported!.some((a) => a === 'none' || a.startsWith('HS'))).toBe(false);
    expect(protectedResourceMetadata({ ...base, dpop: true }).dpop_bound_access_tokens_required).toBe(false);
    expect(() => protectedResourceMetadata({ ...base, tenant: '../admin' })).toThrow(TypeError);
  });

  it('createVerifier refuses symmetric and none algorithms, bad tenants and bad tolerances at once', () => {
    const ok = { brokerUrl: broker, audience: 'https://rs.example/' };
    for (const alg of ['HS256', 'none', 'HS512', 'dir']) expect(() => createVerifier({ ...ok, algorithms: [alg] })).toThrow(TypeError);
    expect(() => createVerifier({ ...ok, algorithms: [] })).toThrow(TypeError);
    expect(() => createVerifier({ ...ok, tenant: 'Not A Tenant' })).toThrow(TypeError);
    expect(() => createVerifier({ ...ok, clockToleranceSeconds: -1 })).toThrow(TypeError);
    expect(createVerifier({ ...ok, algorithms: ['ES384', 'PS512'] })).toHaveProperty('verify');
  });

  it('verify without any tenant source is a programming error, not a client error', async () => {
    const v = createVerifier({ brokerUrl: broker, audience: 'https://rs.example/' });
    await expect(v.verify('x')).rejects.toThrow(TypeError);
  });
});
