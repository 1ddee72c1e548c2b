import { describe, expect, it } from 'vitest';
import { capTtl, chooseResource, decideClientCredentials, grantScopes, parseScopeParam, scopesForError } from '../../src/grants/rules.js';

const api = { uri: 'https://api.example/', scopes: ['read', 'write'], tokenTtl: null };
const billing = { uri: 'https://billing.example/', scopes: ['invoices'], tokenTtl: 60 };

describe('chooseResource (RFC 8707 audience)', () => {
  it.each([
    ['defaults to the only resource', [], [api], { ok: true, resource: api }],
    ['picks the requested registered resource', ['https://billing.example/'], [api, billing], { ok: true, resource: billing }],
    ['refuses a missing resource when several are possible', [], [api, billing], { ok: false, error: 'invalid_target' }],
    ['refuses a client with no resource', [], [], { ok: false, error: 'invalid_target' }],
    ['refuses more than one resource', [api.uri, billing.uri], [api, billing], { ok: false, error: 'invalid_target' }],
    ['refuses a resource the client is not registered for', ['https://other.example/'], [api], { ok: false, error: 'invalid_target' }],
    ['compares exactly (trailing slash matters)', ['https://api.example'], [api], { ok: false, error: 'invalid_target' }],
    ['refuses the same resource twice (still two values)', [api.uri, api.uri], [api], { ok: false, error: 'invalid_target' }],
  ])('%s', (_name, requested, resources, expected) => {
    expect(chooseResource(requested as string[], { resources })).toMatchObject(expected);
  });

  it('answers unknown and foreign resources identically', () => {
    const a = chooseResource(['https://unknown.example/'], { resources: [api] });
    const b = chooseResource([billing.uri], { resources: [api] });
    expect(a).toEqual(b);
  });
});

describe('grantScopes (requested ∩ client ∩ resource, never silently narrowed)', () => {
  it.each([
    ['grants exactly what was asked', ['read'], ['read', 'write'], ['read', 'write'], { ok: true, scopes: ['read'] }],
    ['no scope → everything the client may hold here', undefined, ['read', 'invoices'], ['read', 'write'], { ok: true, scopes: ['read'] }],
    ['empty scope string → same as absent', [], ['read'], ['read'], { ok: true, scopes: ['read'] }],
    ['deduplicates', ['read', 'read'], ['read'], ['read'], { ok: true, scopes: ['read'] }],
    ['refuses a scope the client may not have', ['write'], ['read'], ['read', 'write'], { ok: false, error: 'invalid_scope' }],
    ['refuses a mix instead of dropping the bad one', ['read', 'write'], ['read'], ['read', 'write'], { ok: false, error: 'invalid_scope' }],
    ['refuses a scope the resource does not offer', ['invoices'], ['read', 'invoices'], ['read', 'write'], { ok: false, error: 'invalid_scope' }],
    ['refuses when nothing intersects', undefined, ['invoices'], ['read'], { ok: false, error: 'invalid_scope' }],
  ])('%s', (_name, requested, allowed, offered, expected) => {
    expect(grantScopes(requested as string[] | undefined, allowed, offered)).toMatchObject(expected);
  });

  it('names the offending scope', () => {
    const r = grantScopes(['read', 'admin'], ['read'], ['read']);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.description).toContain('admin');
  });
});

describe('capTtl (most restrictive wins)', () => {
  it.each([
    [[300], 300],
    [[300, null, undefined], 300],
    [[300, 60], 60],
    [[300, 600], 300],
    [[300, 120, 90], 90],
    [[300, 0], 300],
    [[300, Number.POSITIVE_INFINITY], 300],
  ])('capTtl(%j) = %d', (caps, expected) => {
    expect(capTtl(...(caps as number[]))).toBe(expected);
  });
  it('needs a cap', () => expect(() => capTtl(null, undefined)).toThrow(TypeError));
});

describe('parseScopeParam', () => {
  it.each([
    [undefined, undefined],
    ['', []],
    ['a b', ['a', 'b']],
    ['a  b', ['a', 'b']],
    [['a'], undefined],
  ])('%j → %j', (input, expected) => expect(parseScopeParam(input)).toEqual(expected));
});

describe('decideClientCredentials', () => {
  const client = { scopes: ['read', 'invoices'], tokenTtl: 120, resources: [api, billing] };
  it('combines audience, scopes and the TTL caps of tenant, client and resource', () => {
    expect(decideClientCredentials({ requestedResources: [api.uri], requestedScopes: ['read'], client, tenantTtl: 300 }))
      .toEqual({ ok: true, audience: api.uri, scopes: ['read'], ttl: 120, requireDpop: false });
    expect(decideClientCredentials({ requestedResources: [billing.uri], requestedScopes: undefined, client, tenantTtl: 300 }))
      .toEqual({ ok: true, audience: billing.uri, scopes: ['invoices'], ttl: 60, requireDpop: false });
    expect(decideClientCredentials({ requestedResources: [api.uri], requestedScopes: ['read'], client: { ...client, resources: [{ ...api, requireDpop: true }] }, tenantTtl: 300 }))
      .toMatchObject({ ok: true, requireDpop: true });
    expect(decideClientCredentials({ requestedResources: [api.uri], requestedScopes: undefined, client: { ...client, tokenTtl: null }, tenantTtl: 30 }))
      .toMatchObject({ ok: true, ttl: 30 });
  });
  it('checks the audience before scopes', () => {
    expect(decideClientCredentials({ requestedResources: ['https://x/'], requestedScopes: ['nope'], client, tenantTtl: 300 }))
      .toMatchObject({ ok: false, error: 'invalid_target' });
  });
});

describe('scopesForError', () => {
  it.each([
    [[], ''],
    [['a', 'b'], 'a b'],
    [['1', '2', '3', '4', '5', '6', '7'], '1 2 3 4 5 (and 2 more)'],
    [['x'.repeat(200)], `${'x'.repeat(64)}...`],
  ])('%j → %s', (input, expected) => expect(scopesForError(input)).toBe(expected));

  it('bounds the error of a huge request', () => {
    const r = grantScopes(Array.from({ length: 10_000 }, (_, i) => `s${i}`.repeat(50)), ['read'], ['read']);
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r).length).toBeLessThan(600);
  });
});
