import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { randomUUID } from 'node:crypto';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';

type Creds = { client_id: string; client_secret: string };
type Proofs = { dpop: oauth.DPoPHandle; jkt: string };

/**
 * DPoP (RFC 9449) at the token endpoint over real HTTP: oauth4webapi is the client and makes
 * the proofs, jose verifies what comes back. A proof binds the new token to its key
 * (`cnf.jkt`, `token_type: DPoP`); a bound token can only be exchanged with a proof from that
 * key; delegations and resources can require binding; proofs are single-use.
 */
describe.each(DATABASES)('DPoP at the token endpoint (%s)', (kind) => {
  let b: TestBroker;
  let agent: Creds;
  let strictAgent: Creds;
  let service: Creds;
  let strictService: Creds;
  /** A client of acme that may use both grants. */
  let dual: Creds;
  let jwtClient: { client_id: string; key: CryptoKey };
  const apiA = 'https://api.acme.test/';
  const strictApi = 'https://vault.acme.test/';
  const metadata = new Map<string, oauth.AuthorizationServer>();

  async function as(tenant: string): Promise<oauth.AuthorizationServer> {
    let m = metadata.get(tenant);
    if (!m) {
      const issuer = new URL(b.issuer(tenant));
      m = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
      metadata.set(tenant, m);
    }
    return m;
  }

  /** A fresh DPoP key pair held by `client`, as oauth4webapi's handle, and its thumbprint per jose. */
  async function proofsFor(client: { client_id: string }, options?: Parameters<typeof oauth.DPoP>[2]): Promise<Proofs> {
    const keyPair = await oauth.generateKeyPair('ES256');
    const dpop = oauth.DPoP(asClient(client), keyPair, options);
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    expect(await dpop.calculateThumbprint()).toBe(jkt);
    return { dpop, jkt };
  }
  /** Another handle on the same key pair, e.g. with modified claims. */
  function sameKey(keyPair: CryptoKeyPair, client: { client_id: string }, modify: (h: Record<string, unknown>, p: Record<string, unknown>) => void) {
    return oauth.DPoP(asClient(client), keyPair, { [oauth.modifyAssertion]: modify });
  }
  const asClient = (c: { client_id: string }): oauth.Client => ({ client_id: c.client_id });

  /** The raw response body, read once and kept for asserting on refusals and successes alike. */
  async function answer(res: Response): Promise<{ status: number; body: any }> {
    return { status: res.status, body: await res.json() };
  }

  async function clientCredentials(tenant: string, c: Creds, params: Record<string, string> = {}, dpop?: oauth.DPoPHandle, extra: object = {}) {
    return answer(await oauth.clientCredentialsGrantRequest(await as(tenant), { client_id: c.client_id }, oauth.ClientSecretBasic(c.client_secret), new URLSearchParams(params), {
      ...insecure, ...(dpop ? { DPoP: dpop } : {}), ...extra,
    }));
  }

  async function exchange(tenant: string, c: Creds, params: Record<string, string>, dpop?: oauth.DPoPHandle, extra: object = {}) {
    return answer(await oauth.genericTokenEndpointRequest(await as(tenant), { client_id: c.client_id }, oauth.ClientSecretBasic(c.client_secret), TE, new URLSearchParams({
      subject_token_type: AT, ...params,
    }), { ...insecure, ...(dpop ? { DPoP: dpop } : {}), ...extra }));
  }

  async function verify(token: string, tenant: string, audience: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${b.issuer(tenant)}/jwks`)), { issuer: b.issuer(tenant), audience, typ: 'at+jwt' });
    return payload;
  }

  /** Records the DPoP header each request carried, so that it can be sent again. */
  function recorder() {
    const sent: string[] = [];
    return {
      sent,
      options: {
        [oauth.customFetch]: (url: string, init: RequestInit) => {
          const proof = new Headers(init.headers).get('dpop');
          if (proof) sent.push(proof);
          return fetch(url, init);
        },
      },
    };
  }

  beforeAll(async () => {
    b = await startTestBroker(kind);
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'triage-bot' })).body;
    strictAgent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'careful-bot' })).body;
    const acme = await seedTenant(b, 'acme', { resource: apiA });
    service = { client_id: acme.client_id, client_secret: acme.client_secret! };
    await b.admin('POST', '/tenants/acme/resources', { uri: strictApi, scopes: ['secrets:read'], require_dpop: true });
    const strict = await seedTenant(b, 'acme', { resource: strictApi, clientName: 'vault-reader', clientScopes: ['secrets:read'] });
    strictService = { client_id: strict.client_id, client_secret: strict.client_secret! };
    await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read', 'tickets:write', 'secrets:read'], resources: [apiA, strictApi] });
    await b.admin('POST', '/tenants/acme/delegations', { client_id: strictAgent.client_id, scopes: ['tickets:read'], resources: [apiA], require_dpop: true });
    await seedTenant(b, 'globex', { resource: 'https://api.globex.test/' });
    dual = (await b.admin('POST', '/tenants/acme/clients', {
      name: 'dual', scopes: ['tickets:read'], resources: [apiA], grant_types: ['client_credentials', TE],
    })).body;

    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const created = await b.admin('POST', '/tenants/acme/clients', {
      name: 'jwt-client', scopes: ['tickets:read'], resources: [apiA],
      token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] },
    });
    jwtClient = { client_id: created.body.client_id, key: privateKey };
  });
  afterAll(() => b?.close());

  it('metadata advertises dpop_signing_alg_values_supported (asymmetric algorithms only)', async () => {
    const m = await as('acme');
    expect(m.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'RS256', 'PS256']));
    expect(m.dpop_signing_alg_values_supported!.some((alg) => alg === 'none' || alg.startsWith('HS'))).toBe(false);
    const rfc8414 = await (await fetch(`${b.url}/.well-known/oauth-authorization-server/t/acme`)).json();
    expect(rfc8414.dpop_signing_alg_values_supported).toEqual(m.dpop_signing_alg_values_supported);
  });

  it('client_credentials with a proof: token_type DPoP, cnf.jkt = the proof key\'s thumbprint; without: Bearer, no cnf', async () => {
    const { dpop, jkt } = await proofsFor(service);
    const bound = await clientCredentials('acme', service, { scope: 'tickets:read' }, dpop);
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(bound.body.token_type).toBe('DPoP');
    expect((await verify(bound.body.access_token, 'acme', apiA)).cnf).toEqual({ jkt });

    // oauth4webapi processes it as a DPoP token.
    const again = await oauth.clientCredentialsGrantRequest(await as('acme'), { client_id: service.client_id }, oauth.ClientSecretBasic(service.client_secret), new URLSearchParams(), { ...insecure, DPoP: dpop });
    expect((await oauth.processClientCredentialsResponse(await as('acme'), { client_id: service.client_id }, again)).token_type).toBe('dpop');

    const bearer = await clientCredentials('acme', service, { scope: 'tickets:read' });
    expect(bearer.status).toBe(200);
    expect(bearer.body.token_type).toBe('Bearer');
    expect(await verify(bearer.body.access_token, 'acme', apiA)).not.toHaveProperty('cnf');
  });

  it('an agent credential obtained with a proof is bound to its key', async () => {
    const { dpop, jkt } = await proofsFor(agent);
    const res = await clientCredentials('vendor', agent, {}, dpop);
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('DPoP');
    expect(await verify(res.body.access_token, 'vendor', b.issuer('vendor'))).toMatchObject({ sub: agent.client_id, cnf: { jkt } });
  });

  it('a bound subject token: without a proof invalid_request, with another key\'s proof invalid_request, with its key 200 and bound to it', async () => {
    const { dpop, jkt } = await proofsFor(agent);
    const credential = (await clientCredentials('vendor', agent, {}, dpop)).body.access_token as string;

    const bare = await exchange('acme', agent, { subject_token: credential, resource: apiA });
    expect(bare.status).toBe(400);
    expect(bare.body.error).toBe('invalid_request');

    const other = await proofsFor(agent);
    const wrongKey = await exchange('acme', agent, { subject_token: credential, resource: apiA }, other.dpop);
    expect(wrongKey.status).toBe(400);
    expect(wrongKey.body.error).toBe('invalid_request');

    const ok = await exchange('acme', agent, { subject_token: credential, resource: apiA, scope: 'tickets:read' }, dpop);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.token_type).toBe('DPoP');
    expect(await verify(ok.body.access_token, 'acme', apiA)).toMatchObject({ cnf: { jkt }, scope: 'tickets:read', tenant_id: 'acme' });

    // And the bound result, re-exchanged, stays bound to the same key.
    const bareAgain = await exchange('acme', agent, { subject_token: ok.body.access_token });
    expect(bareAgain.body.error).toBe('invalid_request');
    const re = await exchange('acme', agent, { subject_token: ok.body.access_token }, dpop);
    expect(re.status, JSON.stringify(re.body)).toBe(200);
    expect(decodeJwt(re.body.access_token).cnf).toEqual({ jkt });
  });

  it('a bound actor token needs a proof from its key too', async () => {
    const { dpop, jkt } = await proofsFor(agent);
    const boundCredential = (await clientCredentials('vendor', agent, {}, dpop)).body.access_token as string;
    const subject = (await exchange('acme', agent, { subject_token: (await clientCredentials('vendor', agent)).body.access_token, resource: apiA, scope: 'tickets:read' })).body.access_token as string;
    expect(subject).toBeTypeOf('string');
    const form = { subject_token: subject, actor_token: boundCredential, actor_token_type: AT };

    expect((await exchange('acme', agent, form)).body.error).toBe('invalid_request');
    expect((await exchange('acme', agent, form, (await proofsFor(agent)).dpop)).body.error).toBe('invalid_request');
    const ok = await exchange('acme', agent, form, dpop);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(await verify(ok.body.access_token, 'acme', apiA)).toMatchObject({ cnf: { jkt }, act: { sub: agent.client_id } });
  });

  it('an unbound subject token exchanged with a proof: the new token is bound', async () => {
    const { dpop, jkt } = await proofsFor(agent);
    const credential = (await clientCredentials('vendor', agent)).body.access_token as string;
    expect(decodeJwt(credential)).not.toHaveProperty('cnf');
    const res = await exchange('acme', agent, { subject_token: credential, resource: apiA }, dpop);
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('DPoP');
    expect(decodeJwt(res.body.access_token).cnf).toEqual({ jkt });
  });

  it('a delegation with require_dpop: the exchange without a proof is refused, with one it is bound', async () => {
    const credential = (await clientCredentials('vendor', strictAgent)).body.access_token as string;
    const bare = await exchange('acme', strictAgent, { subject_token: credential, resource: apiA });
    expect(bare.status).toBe(400);
    expect(bare.body.error).toBe('invalid_request');
    expect(bare.body.error_description).toMatch(/DPoP/);

    const { dpop, jkt } = await proofsFor(strictAgent);
    const ok = await exchange('acme', strictAgent, { subject_token: credential, resource: apiA }, dpop);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.token_type).toBe('DPoP');
    expect(await verify(ok.body.access_token, 'acme', apiA)).toMatchObject({ cnf: { jkt }, sub: strictAgent.client_id });
  });

  it('a resource with require_dpop: exchange and client_credentials without a proof are refused, with one they are bound', async () => {
    const bare = await clientCredentials('acme', strictService, { resource: strictApi });
    expect(bare.status).toBe(400);
    expect(bare.body.error).toBe('invalid_request');
    const { dpop, jkt } = await proofsFor(strictService);
    const ok = await clientCredentials('acme', strictService, { resource: strictApi }, dpop);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.token_type).toBe('DPoP');
    expect(await verify(ok.body.access_token, 'acme', strictApi)).toMatchObject({ cnf: { jkt }, scope: 'secrets:read' });

    // The agent's delegation does not require DPoP, but this resource does.
    const credential = (await clientCredentials('vendor', agent)).body.access_token as string;
    const bareExchange = await exchange('acme', agent, { subject_token: credential, resource: strictApi });
    expect(bareExchange.status).toBe(400);
    expect(bareExchange.body.error).toBe('invalid_request');
    const a = await proofsFor(agent);
    const okExchange = await exchange('acme', agent, { subject_token: credential, resource: strictApi }, a.dpop);
    expect(okExchange.status, JSON.stringify(okExchange.body)).toBe(200);
    expect(decodeJwt(okExchange.body.access_token)).toMatchObject({ cnf: { jkt: a.jkt }, aud: strictApi });
  });

  it('a proof is single-use: the same proof twice → the second is invalid_dpop_proof', async () => {
    const { dpop } = await proofsFor(service);
    const rec = recorder();
    expect((await clientCredentials('acme', service, {}, dpop, rec.options)).status).toBe(200);
    const [proof] = rec.sent;
    const replay = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [service.client_id, service.client_secret], headers: { dpop: proof! } });
    expect(replay.status).toBe(400);
    expect(replay.body).toMatchObject({ error: 'invalid_dpop_proof' });
    // A fresh proof from the same key is fine.
    expect((await clientCredentials('acme', service, {}, dpop)).status).toBe(200);
  });

  it('a proof used at client_credentials cannot be replayed at token exchange, nor the other way round', async () => {
    const c = { client_id: dual.client_id };
    const { dpop } = await proofsFor(c);
    const rec = recorder();
    const first = await clientCredentials('acme', dual, { scope: 'tickets:read' }, dpop, rec.options);
    expect(first.status).toBe(200);
    const subject = first.body.access_token as string;
    const exchangeWith = (proof: string) => tokenRequest(b, 'acme', { grant_type: TE, subject_token: subject, subject_token_type: AT }, { basic: [dual.client_id, dual.client_secret], headers: { dpop: proof } });
    const ccWith = (proof: string) => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [dual.client_id, dual.client_secret], headers: { dpop: proof } });

    // client_credentials → token exchange.
    const replayed = await exchangeWith(rec.sent.at(-1)!);
    expect(replayed.status).toBe(400);
    expect(replayed.body.error).toBe('invalid_dpop_proof');
    // The same exchange with a fresh proof from the key succeeds (and spends that proof).
    const exchanged = await exchange('acme', dual, { subject_token: subject }, dpop, rec.options);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    expect(exchanged.body.token_type).toBe('DPoP');

    // token exchange → client_credentials.
    const back = await ccWith(rec.sent.at(-1)!);
    expect(back.status).toBe(400);
    expect(back.body.error).toBe('invalid_dpop_proof');
    expect((await clientCredentials('acme', dual, {}, dpop)).status).toBe(200);
  });

  it('proofs and client assertions share one replay store, namespaced: the same jti in both is no collision, each is single-use', async () => {
    const jti = randomUUID();
    const keyPair = await oauth.generateKeyPair('ES256');
    const c = { client_id: jwtClient.client_id };
    const withJti = (assertionJti: string, proofJti: string) => ({
      auth: oauth.PrivateKeyJwt(jwtClient.key, { [oauth.modifyAssertion]: (_h: unknown, p: Record<string, unknown>) => { p.jti = assertionJti; } }),
      dpop: sameKey(keyPair, c, (_h, p) => { p.jti = proofJti; }),
    });
    const send = async ({ auth, dpop }: ReturnType<typeof withJti>) => answer(await oauth.clientCredentialsGrantRequest(await as('acme'), c, auth, new URLSearchParams(), { ...insecure, DPoP: dpop }));

    const first = await send(withJti(jti, jti));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.token_type).toBe('DPoP');
    // The proof's jti is spent, the assertion's is not what refused it.
    const proofReplay = await send(withJti(randomUUID(), jti));
    expect(proofReplay.status).toBe(400);
    expect(proofReplay.body.error).toBe('invalid_dpop_proof');
    // The assertion's jti is spent too.
    const assertionReplay = await send(withJti(jti, randomUUID()));
    expect(assertionReplay.status).toBe(401);
    expect(assertionReplay.body.error).toBe('invalid_client');
    expect((await send(withJti(randomUUID(), randomUUID()))).status).toBe(200);
  });

  describe('malformed proofs are 400 invalid_dpop_proof, on both grants', () => {
    const t = () => Math.floor(Date.now() / 1000);
    const cases: Array<[string, (h: Record<string, unknown>, p: Record<string, unknown>) => void]> = [
      ['htu of another tenant\'s token endpoint', (_h, p) => { p.htu = `${b.issuer('globex')}/token`; }],
      ['htu of the issuer, not its token endpoint', (_h, p) => { p.htu = b.issuer('acme'); }],
      ['htu with a trailing slash', (_h, p) => { p.htu = `${b.issuer('acme')}/token/`; }],
      ['htu not a URL', (_h, p) => { p.htu = 'token'; }],
      ['htm GET', (_h, p) => { p.htm = 'GET'; }],
      ['htm lower-case post', (_h, p) => { p.htm = 'post'; }],
      ['stale iat (an hour ago)', (_h, p) => { p.iat = t() - 3600; }],
      ['iat in the future (an hour ahead)', (_h, p) => { p.iat = t() + 3600; }],
      ['iat a string', (_h, p) => { p.iat = String(t()); }],
      ['no jti', (_h, p) => { delete p.jti; }],
      ['typ JWT', (h) => { h.typ = 'JWT'; }],
      ['jwk with a private member', (h) => { h.jwk = { ...(h.jwk as object), d: 'AAAA' }; }],
      ['no jwk', (h) => { delete h.jwk; }],
    ];

    it.each(cases)('%s', async (_name, modify) => {
      const keyPair = await oauth.generateKeyPair('ES256');
      const bad = sameKey(keyPair, service, modify);
      const refused = await clientCredentials('acme', service, {}, bad);
      expect(refused.status, JSON.stringify(refused.body)).toBe(400);
      expect(refused.body.error).toBe('invalid_dpop_proof');

      const credential = (await clientCredentials('vendor', agent)).body.access_token as string;
      const refusedExchange = await exchange('acme', agent, { subject_token: credential, resource: apiA }, sameKey(keyPair, agent, modify));
      expect(refusedExchange.status, JSON.stringify(refusedExchange.body)).toBe(400);
      expect(refusedExchange.body.error).toBe('invalid_dpop_proof');

      // The same requests with an unmodified proof from the same key succeed.
      expect((await clientCredentials('acme', service, {}, oauth.DPoP(asClient(service), keyPair))).status).toBe(200);
      expect((await exchange('acme', agent, { subject_token: credential, resource: apiA }, oauth.DPoP(asClient(agent), keyPair))).status).toBe(200);
    });

    it('garbage DPoP headers, two DPoP headers, and an empty one', async () => {
      const { dpop } = await proofsFor(service);
      const rec = recorder();
      expect((await clientCredentials('acme', service, {}, dpop, rec.options)).status).toBe(200);
      const used = rec.sent[0]!;
      for (const header of ['x', 'a.b.c', '', `${used}, ${used}`, `${used}x`, used.split('.').slice(0, 2).join('.'), 'e30.e30.e30', '...']) {
        const res = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [service.client_id, service.client_secret], headers: { dpop: header } });
        expect(res.status, JSON.stringify(header)).toBe(400);
        expect(res.body.error).toBe('invalid_dpop_proof');
      }
    });
  });
});
