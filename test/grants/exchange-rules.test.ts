import { describe, expect, it } from 'vitest';
import {
  actDepth, chainActors, checkHolder, checkTokenTypes, chooseExchangeAudience, classifySubject, dpopBinding,
  exchangeExpiry, exchangeScopes, TOKEN_TYPE, type PresentedToken,
} from '../../src/grants/exchange-rules.js';
import type { ActClaim } from '../../src/issuer/context.js';

/**
 * Tables for the pure downscoping rules of token exchange (src/grants/exchange-rules.ts), one
 * describe per exported rule. The HTTP-level proof of the same invariants is
 * token-exchange.invariants.test.ts.
 */

const AT = TOKEN_TYPE.accessToken;
const JWT = TOKEN_TYPE.jwt;
const RT = 'urn:ietf:params:oauth:token-type:refresh_token';
const ID = 'urn:ietf:params:oauth:token-type:id_token';

const refused = (error: string) => ({ ok: false, error });

describe('checkTokenTypes (RFC 8693 §2.1, §3)', () => {
  const base = { subjectTokenType: AT, actorToken: undefined, actorTokenType: undefined, requestedTokenType: undefined };
  it.each([
    ['subject access_token', {}, { ok: true }],
    ['subject jwt', { subjectTokenType: JWT }, { ok: true }],
    ['subject type missing', { subjectTokenType: undefined }, refused('invalid_request')],
    ['subject refresh_token', { subjectTokenType: RT }, refused('invalid_request')],
    ['subject id_token', { subjectTokenType: ID }, refused('invalid_request')],
    ['subject type not a string', { subjectTokenType: [AT] }, refused('invalid_request')],
    ['actor access_token', { actorToken: 'x.y.z', actorTokenType: AT }, { ok: true }],
    ['actor jwt', { actorToken: 'x.y.z', actorTokenType: JWT }, { ok: true }],
    ['actor_token without actor_token_type', { actorToken: 'x.y.z' }, refused('invalid_request')],
    ['actor_token with refresh_token type', { actorToken: 'x.y.z', actorTokenType: RT }, refused('invalid_request')],
    ['actor_token_type without actor_token', { actorTokenType: AT }, refused('invalid_request')],
    ['requested access_token', { requestedTokenType: AT }, { ok: true }],
    ['requested refresh_token', { requestedTokenType: RT }, refused('invalid_request')],
    ['requested jwt (only access tokens are issued)', { requestedTokenType: JWT }, refused('invalid_request')],
    ['requested id_token', { requestedTokenType: ID }, refused('invalid_request')],
  ])('%s', (_name, override, expected) => {
    const d = checkTokenTypes({ ...base, ...override });
    if (expected.ok) expect(d).toEqual({ ok: true });
    else expect(d).toMatchObject(expected);
  });

  it('says which parameter is wrong', () => {
    const r = checkTokenTypes({ ...base, requestedTokenType: RT });
    expect(!r.ok && r.description).toMatch(/requested_token_type/);
    const a = checkTokenTypes({ ...base, actorTokenType: AT });
    expect(!a.ok && a.description).toMatch(/actor_token_type/);
  });
});

describe('classifySubject (tenant match)', () => {
  const T = 'https://bh.test/t/acme';
  const H = 'https://bh.test/t/vendor';
  const C = 'https://bh.test/t/globex';
  const api = 'https://api.acme.test/';
  type Subject = Pick<PresentedToken, 'iss' | 'aud' | 'scopes' | 'tenant_id'>;
  const tenantToken: Subject = { iss: T, tenant_id: 'acme', aud: [api], scopes: ['read'] };
  const localCredential: Subject = { iss: T, tenant_id: 'acme', aud: [T], scopes: [] };
  const homeCredential: Subject = { iss: H, tenant_id: 'vendor', aud: [H], scopes: [] };
  const homeToken: Subject = { iss: H, tenant_id: 'vendor', aud: ['https://api.vendor.test/'], scopes: ['read'] };
  const thirdCredential: Subject = { iss: C, tenant_id: 'globex', aud: [C], scopes: [] };
  const thirdToken: Subject = { iss: C, tenant_id: 'globex', aud: ['https://api.globex.test/'], scopes: ['read'] };

  const at = { tenantId: 'acme', issuer: T };
  const service = { ...at, clientHomeTenant: 'acme', clientHomeIssuer: T, clientIsAgent: false };
  const localAgent = { ...at, clientHomeTenant: 'acme', clientHomeIssuer: T, clientIsAgent: true };
  const foreignAgent = { ...at, clientHomeTenant: 'vendor', clientHomeIssuer: H, clientIsAgent: true };

  it.each<[string, Subject, typeof service, object]>([
    ['own-tenant token, service client', tenantToken, service, { ok: true, kind: 'tenant-token' }],
    ['own-tenant token, local agent', tenantToken, localAgent, { ok: true, kind: 'tenant-token' }],
    ['own-tenant token, foreign agent', tenantToken, foreignAgent, { ok: true, kind: 'tenant-token' }],
    ['local agent credential, by the local agent', localCredential, localAgent, { ok: true, kind: 'agent-credential' }],
    ['local agent credential, by a foreign agent', localCredential, foreignAgent, refused('invalid_request')],
    ['local agent credential, by a non-agent', localCredential, service, refused('invalid_request')],
    ['foreign home credential, by the agent from that home', homeCredential, foreignAgent, { ok: true, kind: 'agent-credential' }],
    ['foreign home credential, by a non-agent', homeCredential, { ...service }, refused('invalid_request')],
    ['foreign home credential, by an agent from another home', homeCredential, localAgent, refused('invalid_request')],
    ['home token that is not a credential (resource audience, scopes)', homeToken, foreignAgent, refused('invalid_request')],
    ['home "credential" that carries a scope', { ...homeCredential, scopes: ['read'] }, foreignAgent, refused('invalid_request')],
    ['home "credential" with a second audience', { ...homeCredential, aud: [H, api] }, foreignAgent, refused('invalid_request')],
    ['home token whose audience is this tenant\'s issuer', { ...homeCredential, aud: [T] }, foreignAgent, refused('invalid_request')],
    ['third tenant credential, foreign agent', thirdCredential, foreignAgent, refused('invalid_request')],
    ['third tenant token, foreign agent', thirdToken, foreignAgent, refused('invalid_request')],
    ['third tenant token, service client', thirdToken, service, refused('invalid_request')],
    ['iss of this tenant, tenant_id of another (service)', { ...tenantToken, tenant_id: 'globex' }, service, refused('invalid_request')],
    ['iss of this tenant, tenant_id of another (local agent credential)', { ...localCredential, tenant_id: 'globex' }, localAgent, refused('invalid_request')],
    ['iss of the home, tenant_id of this tenant', { ...homeCredential, tenant_id: 'acme' }, foreignAgent, refused('invalid_request')],
    ['iss of the home, tenant_id of a third tenant', { ...homeCredential, tenant_id: 'globex' }, foreignAgent, refused('invalid_request')],
    ['iss of a third tenant, tenant_id of this one', { ...thirdToken, tenant_id: 'acme' }, service, refused('invalid_request')],
  ])('%s', (_name, subject, where, expected) => {
    const d = classifySubject(subject, where);
    if ((expected as { ok: boolean }).ok) expect(d).toEqual(expected);
    else expect(d).toMatchObject(expected);
  });
});

describe('checkHolder (RFC 8693 §5, §4.4 may_act)', () => {
  const H = 'https://bh.test/t/vendor';
  type Holder = Pick<PresentedToken, 'client_id' | 'may_act'>;
  it.each<[string, Holder, boolean]>([
    ['issued to this client', { client_id: 'ag_y' }, true],
    ['issued to another client', { client_id: 'ag_x' }, false],
    ['issued to this client, may_act names someone else', { client_id: 'ag_y', may_act: { sub: 'ag_z' } }, true],
    ['may_act.sub names this client (no iss)', { client_id: 'ag_x', may_act: { sub: 'ag_y' } }, true],
    ['may_act.sub and iss name this client', { client_id: 'ag_x', may_act: { sub: 'ag_y', iss: H } }, true],
    ['may_act.sub matches, iss is another issuer', { client_id: 'ag_x', may_act: { sub: 'ag_y', iss: 'https://bh.test/t/globex' } }, false],
    ['may_act.sub matches, iss not a string', { client_id: 'ag_x', may_act: { sub: 'ag_y', iss: 7 } }, false],
    ['may_act.sub names another client', { client_id: 'ag_x', may_act: { sub: 'ag_z' } }, false],
    ['may_act.sub missing', { client_id: 'ag_x', may_act: { iss: H } }, false],
    ['may_act.sub as an array', { client_id: 'ag_x', may_act: { sub: ['ag_y'] } }, false],
    ['may_act is a string', { client_id: 'ag_x', may_act: 'ag_y' as never }, false],
    ['may_act is null', { client_id: 'ag_x', may_act: null as never }, false],
    ['may_act is an array', { client_id: 'ag_x', may_act: [{ sub: 'ag_y' }] as never }, false],
    ['client_id differs only in case', { client_id: 'AG_Y' }, false],
  ])('%s → %s', (_name, token, expected) => {
    expect(checkHolder(token, 'ag_y', H)).toBe(expected);
  });
});

/** A chain of `n` actors: a1 ← a2 ← … (a1 outermost). */
function chain(n: number, prefix = 'a'): ActClaim | undefined {
  let act: ActClaim | undefined;
  for (let i = n; i >= 1; i--) act = { sub: `${prefix}${i}`, iss: 'https://bh.test/t/vendor', ...(act ? { act } : {}) };
  return act;
}

describe('actDepth', () => {
  it.each([
    [0, undefined, 64],
    [1, chain(1), 64],
    [3, chain(3), 64],
    [16, chain(16), 64],
    [4, chain(4), 4],
    // stops counting one past the limit: enough to know it is over
    [5, chain(5), 4],
    [5, chain(9), 4],
    [3, chain(10), 2],
  ])('%d for %j (limit %d)', (expected, act, limit) => {
    expect(actDepth(act, limit)).toBe(expected);
  });

  it('defaults to a limit of 64', () => {
    expect(actDepth(chain(100))).toBe(65);
  });
});

describe('chainActors (RFC 8693 §4.1, depth limit)', () => {
  const LIMIT = 3;
  const Y = { sub: 'ag_y', iss: 'https://bh.test/t/vendor' };

  it.each(Array.from({ length: LIMIT + 2 }, (_, depth) => depth))('a resulting chain of %d actors (limit 3)', (depth) => {
    // via a new actor on top of depth-1 prior actors…
    const viaActor = chainActors(chain(depth - 1), depth > 0 ? Y : undefined, LIMIT);
    // …and via a subject that already carries `depth` actors, with no new one
    const viaSubject = chainActors(chain(depth), undefined, LIMIT);
    for (const d of [viaActor, viaSubject]) {
      if (depth <= LIMIT) {
        expect(d.ok).toBe(true);
        expect(actDepth(d.ok ? d.act : undefined)).toBe(depth);
      } else {
        expect(d).toMatchObject(refused('invalid_request'));
        expect(!d.ok && d.description).toContain(String(LIMIT));
      }
    }
  });

  it.each<[string, ActClaim | undefined, ActClaim | undefined, object]>([
    ['no prior chain, no actor: no act', undefined, undefined, { ok: true }],
    ['subject act kept when no new actor', chain(2), undefined, { ok: true, act: chain(2) }],
    ['a new actor alone', undefined, Y, { ok: true, act: Y }],
    ['a new actor goes outside, the previous chain nested unchanged', chain(2), Y, { ok: true, act: { ...Y, act: chain(2) } }],
  ])('%s', (_name, subjectAct, actor, expected) => {
    expect(chainActors(subjectAct, actor, LIMIT)).toEqual(expected);
  });

  it('preserves every level of a nested chain (sub and iss)', () => {
    const prior: ActClaim = { sub: 'u1', iss: 'https://idp.example', act: { sub: 'u2', act: { sub: 'u3', iss: 'https://other.example' } } };
    const d = chainActors(prior, Y, 4);
    expect(d).toEqual({ ok: true, act: { sub: 'ag_y', iss: Y.iss, act: prior } });
  });

  it('does not mutate its inputs', () => {
    const prior = chain(2)!;
    const actor = { ...Y };
    const before = JSON.stringify([prior, actor]);
    chainActors(prior, actor, LIMIT);
    expect(JSON.stringify([prior, actor])).toBe(before);
  });
});

describe('chooseExchangeAudience (one resource, within the ceiling)', () => {
  const api = { uri: 'https://api.acme.test/', scopes: ['read', 'write'], tokenTtl: null };
  const billing = { uri: 'https://billing.acme.test/', scopes: ['invoices'], tokenTtl: 60 };
  const cred = { kind: 'agent-credential' as const, aud: ['https://bh.test/t/vendor'] };
  const onApi = { kind: 'tenant-token' as const, aud: [api.uri] };
  const R = (resources: string[] = [], audiences: string[] = []) => ({ resources, audiences });

  it.each([
    ['resource names one in the ceiling', R([billing.uri]), [api, billing], cred, { ok: true, resource: billing }],
    ['audience names one in the ceiling', R([], [billing.uri]), [api, billing], cred, { ok: true, resource: billing }],
    ['resource and audience equal', R([api.uri], [api.uri]), [api, billing], cred, { ok: true, resource: api }],
    ['resource and audience different', R([api.uri], [billing.uri]), [api, billing], cred, refused('invalid_target')],
    ['several resources', R([api.uri, billing.uri]), [api, billing], cred, refused('invalid_target')],
    ['several audiences', R([], [api.uri, billing.uri]), [api, billing], cred, refused('invalid_target')],
    ['default: the single resource of the ceiling', R(), [api], cred, { ok: true, resource: api }],
    ['no default among several', R(), [api, billing], cred, refused('invalid_target')],
    ['nothing in the ceiling', R(), [], cred, refused('invalid_target')],
    ['unknown resource', R(['https://unknown.test/']), [api, billing], cred, refused('invalid_target')],
    ['compared exactly (no trailing slash)', R(['https://api.acme.test']), [api], cred, refused('invalid_target')],
    ['tenant token: its own audience', R([api.uri]), [api, billing], onApi, { ok: true, resource: api }],
    ['tenant token: default is its own audience among several', R(), [api, billing], onApi, { ok: true, resource: api }],
    ['tenant token: cannot switch to another resource of the ceiling', R([billing.uri]), [api, billing], onApi, refused('invalid_target')],
    ['tenant token: cannot switch via audience either', R([], [billing.uri]), [api, billing], onApi, refused('invalid_target')],
    ['tenant token: its audience no longer in the ceiling', R([api.uri]), [billing], onApi, refused('invalid_target')],
    ['tenant token: no default when its audience left the ceiling', R(), [billing], onApi, refused('invalid_target')],
  ])('%s', (_name, requested, ceiling, subject, expected) => {
    const d = chooseExchangeAudience(requested, ceiling, subject);
    if ((expected as { ok: boolean }).ok) expect(d).toEqual(expected);
    else expect(d).toMatchObject(expected);
  });

  it('answers unknown and foreign resources identically', () => {
    const a = chooseExchangeAudience(R(['https://unknown.test/']), [api], cred);
    const b = chooseExchangeAudience(R([billing.uri]), [api], cred);
    expect(a).toEqual(b);
  });
});

describe('exchangeScopes (requested ∩ subject ∩ ceiling ∩ resource)', () => {
  const tenant = (scopes: string[]) => ({ kind: 'tenant-token' as const, scopes });
  const cred = { kind: 'agent-credential' as const, scopes: [] };

  it.each<[string, string[] | undefined, { kind: 'tenant-token' | 'agent-credential'; scopes: string[] }, string[], string[], object]>([
    ['exactly what was asked', ['read'], tenant(['read', 'write']), ['read', 'write'], ['read', 'write'], { ok: true, scopes: ['read'] }],
    ['deduplicated', ['read', 'read'], tenant(['read']), ['read'], ['read'], { ok: true, scopes: ['read'] }],
    ['agent credential: its (empty) scopes do not bind', ['write'], cred, ['read', 'write'], ['write'], { ok: true, scopes: ['write'] }],
    ['no request → the intersection of all sets (ceiling order)', undefined, tenant(['write', 'read', 'x']), ['read', 'write', 'y'], ['write', 'read', 'z'], { ok: true, scopes: ['read', 'write'] }],
    ['empty request → same as none', [], tenant(['read']), ['read', 'write'], ['read', 'write'], { ok: true, scopes: ['read'] }],
    ['agent credential, no request → ceiling ∩ resource', undefined, cred, ['read', 'invoices'], ['read', 'write'], { ok: true, scopes: ['read'] }],
    ['empty intersection → invalid_scope', undefined, tenant(['read']), ['write'], ['read', 'write'], refused('invalid_scope')],
    ['empty intersection (ceiling vs resource) → invalid_scope', undefined, cred, ['invoices'], ['read'], refused('invalid_scope')],
    ['outside the subject', ['write'], tenant(['read']), ['read', 'write'], ['read', 'write'], refused('invalid_scope')],
    ['outside the ceiling', ['write'], tenant(['read', 'write']), ['read'], ['read', 'write'], refused('invalid_scope')],
    ['outside the resource', ['invoices'], tenant(['read', 'invoices']), ['read', 'invoices'], ['read'], refused('invalid_scope')],
    ['a mix is refused, never narrowed', ['read', 'write'], tenant(['read']), ['read', 'write'], ['read', 'write'], refused('invalid_scope')],
  ])('%s', (_name, requested, subject, ceiling, offered, expected) => {
    const d = exchangeScopes(requested, subject, ceiling, offered);
    if ((expected as { ok: boolean }).ok) expect(d).toEqual(expected);
    else expect(d).toMatchObject(expected);
  });

  it.each([
    ['the subject token', ['write'], tenant(['read']), ['read', 'write'], ['read', 'write'], 'held by the subject token'],
    ['the ceiling (delegation / client)', ['write'], tenant(['read', 'write']), ['read'], ['read', 'write'], 'allowed for this client here'],
    ['the resource', ['write'], tenant(['read', 'write']), ['read', 'write'], ['read'], 'offered by the requested resource'],
  ])('the error names the binding set: %s, and the scope', (_name, requested, subject, ceiling, offered, phrase) => {
    const d = exchangeScopes(requested, subject, ceiling, offered);
    expect(d.ok).toBe(false);
    expect(!d.ok && d.description).toContain(phrase);
    expect(!d.ok && d.description).toContain('write');
  });

  it('names every offending scope of the binding set', () => {
    const d = exchangeScopes(['read', 'a', 'b'], tenant(['read']), ['read', 'a', 'b'], ['read', 'a', 'b']);
    expect(!d.ok && d.description).toMatch(/a b$/);
  });
});

describe('exchangeExpiry (min of subject exp, caps, notAfter)', () => {
  const now = 1_000_000;
  it.each<[string, { subjectExp: number; caps: Array<number | null | undefined>; notAfter?: number | null }, object]>([
    ['subject exp binds', { subjectExp: now + 50, caps: [300, null, 120, undefined] }, { ok: true, exp: now + 50 }],
    ['tenant cap binds', { subjectExp: now + 3600, caps: [100, null, null, null] }, { ok: true, exp: now + 100 }],
    ['client cap binds', { subjectExp: now + 3600, caps: [300, 90, null, null] }, { ok: true, exp: now + 90 }],
    ['delegation cap binds', { subjectExp: now + 3600, caps: [300, 200, 80, 250] }, { ok: true, exp: now + 80 }],
    ['resource cap binds', { subjectExp: now + 3600, caps: [300, 200, 120, 70] }, { ok: true, exp: now + 70 }],
    ['notAfter binds', { subjectExp: now + 3600, caps: [300, 200, 120, 70], notAfter: now + 40 }, { ok: true, exp: now + 40 }],
    ['notAfter null is no bound', { subjectExp: now + 3600, caps: [300], notAfter: null }, { ok: true, exp: now + 300 }],
    ['notAfter later than the caps does not extend', { subjectExp: now + 3600, caps: [300], notAfter: now + 9999 }, { ok: true, exp: now + 300 }],
    ['exactly one second left is enough', { subjectExp: now + 1, caps: [300] }, { ok: true, exp: now + 1 }],
    ['a fractional subject exp is rounded down, never up', { subjectExp: now + 10.9, caps: [300] }, { ok: true, exp: now + 10 }],
    ['subject expiring now is refused', { subjectExp: now, caps: [300] }, refused('invalid_request')],
    ['subject with half a second left is refused', { subjectExp: now + 0.5, caps: [300] }, refused('invalid_request')],
    ['subject already expired is refused', { subjectExp: now - 10, caps: [300] }, refused('invalid_request')],
    ['notAfter now is refused', { subjectExp: now + 3600, caps: [300], notAfter: now }, refused('invalid_request')],
    ['notAfter past is refused', { subjectExp: now + 3600, caps: [300], notAfter: now - 1 }, refused('invalid_request')],
  ])('%s', (_name, p, expected) => {
    const d = exchangeExpiry({ now, ...p });
    if ((expected as { ok: boolean }).ok) expect(d).toEqual(expected);
    else expect(d).toMatchObject(expected);
  });

  it('never exceeds any bound (property over a grid)', () => {
    for (const subjectExp of [now + 5, now + 100, now + 5000]) {
      for (const caps of [[300], [300, 60], [300, null, 30, 500], [20, 600]]) {
        for (const notAfter of [null, now + 15, now + 10_000]) {
          const d = exchangeExpiry({ now, subjectExp, caps, notAfter });
          expect(d.ok).toBe(true);
          if (!d.ok) continue;
          expect(d.exp).toBeLessThanOrEqual(subjectExp);
          for (const c of caps) if (c) expect(d.exp).toBeLessThanOrEqual(now + c);
          if (notAfter) expect(d.exp).toBeLessThanOrEqual(notAfter);
          expect(d.exp).toBe(Math.min(subjectExp, now + Math.min(...caps.filter((c): c is number => !!c)), notAfter ?? Infinity));
        }
      }
    }
  });
});

describe('dpopBinding (RFC 9449 at the exchange)', () => {
  const K1 = 'jkt-one';
  const K2 = 'jkt-two';
  it.each<[string, { proofJkt?: string; boundTo: Array<string | undefined>; required: boolean }, object]>([
    ['unbound, no proof, not required → bearer', { boundTo: [undefined, undefined], required: false }, { ok: true }],
    ['unbound, proof → bound to the proof', { proofJkt: K1, boundTo: [undefined], required: false }, { ok: true, jkt: K1 }],
    ['bound subject, no proof → refused', { boundTo: [K1, undefined], required: false }, refused('invalid_request')],
    ['bound subject, proof by its key → bound to it', { proofJkt: K1, boundTo: [K1, undefined], required: false }, { ok: true, jkt: K1 }],
    ['bound subject, proof by another key → refused', { proofJkt: K2, boundTo: [K1, undefined], required: false }, refused('invalid_request')],
    ['bound actor, proof by another key → refused', { proofJkt: K1, boundTo: [undefined, K2], required: false }, refused('invalid_request')],
    ['bound actor, no proof → refused', { boundTo: [undefined, K2], required: false }, refused('invalid_request')],
    ['subject and actor bound to different keys → refused whatever the proof', { proofJkt: K1, boundTo: [K1, K2], required: false }, refused('invalid_request')],
    ['subject and actor bound to the proof key → bound', { proofJkt: K1, boundTo: [K1, K1], required: false }, { ok: true, jkt: K1 }],
    ['required, no proof → refused', { boundTo: [undefined], required: true }, refused('invalid_request')],
    ['required, proof → bound to the proof', { proofJkt: K2, boundTo: [undefined], required: true }, { ok: true, jkt: K2 }],
    ['required, bound subject and its proof → bound', { proofJkt: K1, boundTo: [K1], required: true }, { ok: true, jkt: K1 }],
  ])('%s', (_name, p, expected) => {
    const d = dpopBinding(p);
    if ((expected as { ok: boolean }).ok) expect(d).toEqual(expected);
    else expect(d).toMatchObject(expected);
  });

  it('says whether the proof is missing or from the wrong key', () => {
    const missing = dpopBinding({ boundTo: [K1], required: false });
    const wrong = dpopBinding({ proofJkt: K2, boundTo: [K1], required: false });
    expect(!missing.ok && missing.description).toMatch(/required/);
    expect(!wrong.ok && wrong.description).toMatch(/not from the key/);
  });
});
