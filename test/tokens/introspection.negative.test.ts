import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey } from 'jose';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/**
 * The edges of /t/T/introspect (RFC 7662) and /t/T/revoke (RFC 7009): methods, body shapes,
 * repeated and missing parameters, oversized tokens, the three client authentication methods
 * (with assertion replay), agents installed in the tenant, and what an active DPoP-bound or
 * exchanged token looks like. Every answer is checked for a 5xx or a leaked stack trace.
 */
describe('introspection and revocation: input edge cases (pglite)', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let rs: Awaited<ReturnType<typeof seedTenant>>;
  let poster: Awaited<ReturnType<typeof seedTenant>>;
  let jwtClient: Awaited<ReturnType<typeof seedTenant>>;
  let jwtKey: CryptoKey;
  let globex: Awaited<ReturnType<typeof seedTenant>>;
  let agent: { client_id: string; client_secret: string };
  let stranger: { client_id: string; client_secret: string };
  const answers: Answer[] = [];

  const basicHeader = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  const basic = (c: { client_id: string; client_secret?: string }) => ({ authorization: basicHeader(c.client_id, c.client_secret!) });
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

  /** Any request to a tenant endpoint; every answer is kept for the no-5xx, no-stack check. */
  async function send(tenant: string, endpoint: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
    const res = await fetch(`${b.url}/t/${tenant}/${endpoint}`, { method: init.method ?? 'POST', headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* asserted on as text */
    }
    const answer = { status: res.status, headers: res.headers, text, body };
    answers.push(answer);
    return answer;
  }
  /** A form POST; `form` may repeat a name by giving a list. */
  function post(tenant: string, endpoint: 'introspect' | 'revoke', form: Record<string, string | string[]>, headers: Record<string, string> = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
    return send(tenant, endpoint, { headers: { ...FORM, ...headers }, body: params.toString() });
  }
  const introspect = (token: string, headers: Record<string, string> = basic(rs), tenant = 'acme') => post(tenant, 'introspect', { token }, headers);

  async function cc(tenant: string, c: { client_id: string; client_secret?: string }, headers: Record<string, string> = {}): Promise<string> {
    const r = await tokenRequest(b, tenant, { grant_type: 'client_credentials' }, { basic: [c.client_id, c.client_secret!], headers });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.access_token;
  }
  async function agentToken(extra: Record<string, string> = {}, subject?: string): Promise<string> {
    const form = { grant_type: TE, subject_token: subject ?? (await cc('vendor', agent)), subject_token_type: AT, ...extra };
    const r = await tokenRequest(b, 'acme', form, { basic: [agent.client_id, agent.client_secret] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.access_token;
  }
  async function assertion(clientId: string, key: CryptoKey, claims: Record<string, unknown> = {}, audience = b.issuer('acme')): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(key);
  }
  const expectRequestError = (r: Answer, status: number, description?: RegExp) => {
    expect(r.status, r.text).toBe(status);
    expect(r.body.error).toBe('invalid_request');
    if (description) expect(r.body.error_description).toMatch(description);
  };

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    acme = await seedTenant(b, 'acme');
    rs = await seedTenant(b, 'acme', { clientName: 'tickets-api' });
    poster = await seedTenant(b, 'acme', { clientName: 'poster', auth: 'client_secret_post' });
    const pair = await generateKeyPair('ES256', { extractable: true });
    jwtKey = pair.privateKey;
    jwtClient = await seedTenant(b, 'acme', { clientName: 'jwt-svc', auth: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', use: 'sig' }] } });
    globex = await seedTenant(b, 'globex');
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'bot' })).body;
    stranger = (await b.admin('POST', '/tenants/vendor/agents', { name: 'not-installed' })).body;
    await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [acme.resource] });
  });
  afterAll(() => b?.close());

  it('methods other than POST → 405 with Allow: POST', async () => {
    for (const endpoint of ['introspect', 'revoke']) {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
        const r = await send('acme', endpoint, { method, headers: basic(rs) });
        expect(r.status, `${method} ${endpoint}`).toBe(405);
        expect(r.headers.get('allow')).toBe('POST');
        expect(r.body.error).toBe('invalid_request');
      }
      const head = await send('acme', endpoint, { method: 'HEAD' });
      expect(head.status).toBe(405);
    }
  });

  it('a body that is not a form → 400, whatever it carries', async () => {
    const token = await cc('acme', acme);
    for (const endpoint of ['introspect', 'revoke']) {
      for (const [type, body] of [
        ['application/json', JSON.stringify({ token })],
        ['text/plain', `token=${token}`],
        ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="token"\r\n\r\n${token}\r\n--x--\r\n`],
      ] as const) {
        expectRequestError(await send('acme', endpoint, { headers: { 'content-type': type, ...basic(rs) }, body }), 400, /x-www-form-urlencoded/);
      }
      expectRequestError(await send('acme', endpoint, { headers: basic(rs) }), 400);
    }
    // Nothing of the above revoked it.
    expect((await introspect(token)).body.active).toBe(true);
  });

  it('a repeated parameter → 400 (RFC 6749 §3.2), token or any other', async () => {
    const token = await cc('acme', acme);
    for (const endpoint of ['introspect', 'revoke'] as const) {
      expectRequestError(await post('acme', endpoint, { token: [token, token] }, basic(rs)), 400, /parameter token must not be repeated/);
      expectRequestError(await post('acme', endpoint, { token: [token, 'garbage'] }, basic(acme)), 400, /token must not be repeated/);
      expectRequestError(await post('acme', endpoint, { token, client_id: [poster.client_id, poster.client_id], client_secret: poster.client_secret! }), 400, /client_id must not be repeated/);
    }
    expect((await introspect(token)).body.active).toBe(true);
  });

  it('a missing or empty token → 400 for an authenticated caller (401 first for an unauthenticated one)', async () => {
    for (const endpoint of ['introspect', 'revoke'] as const) {
      expectRequestError(await post('acme', endpoint, {}, basic(rs)), 400, /token parameter is required/);
      expectRequestError(await post('acme', endpoint, { token: '' }, basic(rs)), 400, /token parameter is required/);
      expectRequestError(await post('acme', endpoint, { token_type_hint: 'access_token' }, basic(rs)), 400, /token parameter is required/);
      const anonymous = await post('acme', endpoint, {});
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error).toBe('invalid_client');
    }
  });

  it('too many parameters → 400; a body past the limit (a 100 KB token) → 413; a long token under it is just inactive', async () => {
    const many: Record<string, string> = { token: 'x' };
    for (let i = 0; i < 120; i++) many[`p${i}`] = 'v';
    expectRequestError(await post('acme', 'introspect', many, basic(rs)), 400, /too many parameters/);

    const huge = 'a'.repeat(100 * 1024);
    for (const endpoint of ['introspect', 'revoke'] as const) {
      const r = await post('acme', endpoint, { token: huge }, basic(rs));
      expect(r.status).toBe(413);
      expect(r.body.error).toBe('invalid_request');
    }
    // Past the presented-token bound (8 KB) but under the body limit: not one of ours.
    const long = `${'a'.repeat(10_000)}.${'b'.repeat(10_000)}.${'c'.repeat(100)}`;
    expect(await introspect(long)).toMatchObject({ status: 200, body: { active: false } });
    expect((await post('acme', 'revoke', { token: long }, basic(rs))).status).toBe(200);
  });

  it('private_key_jwt: a fresh assertion authenticates; replayed (here or at /revoke) it is 401', async () => {
    const token = await cc('acme', acme);
    const form = (a: string) => ({ token, client_id: jwtClient.client_id, client_assertion_type: ASSERTION_TYPE, client_assertion: a });
    const a1 = await assertion(jwtClient.client_id, jwtKey);
    const ok = await post('acme', 'introspect', form(a1));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ active: true, client_id: acme.client_id, tenant_id: 'acme' });

    for (const endpoint of ['introspect', 'revoke'] as const) {
      const replayed = await post('acme', endpoint, form(a1));
      expect(replayed.status, endpoint).toBe(401);
      expect(replayed.body.error).toBe('invalid_client');
      expect(replayed.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    }

    // Refused too: a key it does not have, another audience, no jti, the wrong assertion type.
    const { privateKey: otherKey } = await generateKeyPair('ES256');
    const bad = [
      await assertion(jwtClient.client_id, otherKey),
      await assertion(jwtClient.client_id, jwtKey, {}, b.issuer('globex')),
      await assertion(jwtClient.client_id, jwtKey, { jti: undefined }),
    ];
    for (const a of bad) expect((await post('acme', 'introspect', form(a))).status).toBe(401);
    expect((await post('acme', 'introspect', { ...form(await assertion(jwtClient.client_id, jwtKey)), client_assertion_type: 'urn:x' })).status).toBe(401);
    // An assertion and a secret at once is two methods: refused.
    expect((await post('acme', 'introspect', form(await assertion(jwtClient.client_id, jwtKey)), basic(rs))).status).toBe(401);
    // The assertion names acme's issuer: at globex it is nobody.
    expect((await post('globex', 'introspect', form(await assertion(jwtClient.client_id, jwtKey)))).status).toBe(401);
    // Nothing above revoked the token.
    expect((await introspect(token)).body.active).toBe(true);
  });

  it('client_secret_post authenticates with the secret in the body; the wrong method or secret is 401', async () => {
    const token = await cc('acme', acme);
    const ok = await post('acme', 'introspect', { token, client_id: poster.client_id, client_secret: poster.client_secret! });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.active).toBe(true);

    for (const r of [
      await post('acme', 'introspect', { token, client_id: poster.client_id, client_secret: 'bhs_wrong' }),
      // Registered for client_secret_post: Basic is another method.
      await post('acme', 'introspect', { token }, basic(poster)),
      // Registered for client_secret_basic: the secret in the body is another method.
      await post('acme', 'introspect', { token, client_id: rs.client_id, client_secret: rs.client_secret! }),
      // Basic and a different client_id in the body.
      await post('acme', 'introspect', { token, client_id: poster.client_id }, basic(rs)),
    ]) {
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_client');
    }
  });

  it('an agent installed in T revokes its own T token; it can introspect too (it authenticates as a client of T)', async () => {
    // src/tokens/endpoints.ts authenticates the caller the same way for both endpoints: T's own
    // clients and agents with an active delegation in T. So the agent may introspect.
    const own = await agentToken();
    const seen = await introspect(own, basic(agent));
    expect(seen.status, seen.text).toBe(200);
    expect(seen.body).toMatchObject({ active: true, client_id: agent.client_id, tenant_id: 'acme', sub: agent.client_id });

    // It cannot revoke another client's token…
    const other = await cc('acme', acme);
    const refused = await post('acme', 'revoke', { token: other }, basic(agent));
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('unauthorized_client');
    expect((await introspect(other)).body.active).toBe(true);

    // …but revokes its own, inactive at once.
    expect((await post('acme', 'revoke', { token: own }, basic(agent))).status).toBe(200);
    expect((await introspect(own)).body).toEqual({ active: false });
    expect((await introspect(own, basic(agent))).body).toEqual({ active: false });

    // Its home credential is not one of acme's tokens: inactive here, and "revoking" it here is
    // a 200 that changes nothing (RFC 7009 §2.2), so it still exchanges.
    const credential = await cc('vendor', agent);
    expect((await introspect(credential)).body).toEqual({ active: false });
    expect((await post('acme', 'revoke', { token: credential }, basic(agent))).status).toBe(200);
    expect((await tokenRequest(b, 'acme', { grant_type: TE, subject_token: credential, subject_token_type: AT }, { basic: [agent.client_id, agent.client_secret] })).status).toBe(200);

    // An agent not installed in acme is nobody here, at both endpoints.
    for (const endpoint of ['introspect', 'revoke'] as const) {
      const r = await post('acme', endpoint, { token: other }, basic(stranger));
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_client');
    }
  });

  it('a client of another tenant learns nothing and revokes nothing of acme', async () => {
    const token = await cc('acme', acme);
    // At acme's endpoints it cannot authenticate…
    expect((await post('acme', 'introspect', { token }, basic(globex))).status).toBe(401);
    expect((await post('acme', 'revoke', { token }, basic(globex))).status).toBe(401);
    // …and at its own, acme's token is not a token.
    expect((await introspect(token, basic(globex), 'globex')).body).toEqual({ active: false });
    expect((await post('globex', 'revoke', { token }, basic(globex))).status).toBe(200);
    expect((await introspect(token)).body.active).toBe(true);
  });

  it('a DPoP-bound token introspects with token_type DPoP and cnf.jkt', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const proof = await new SignJWT({ htm: 'POST', htu: `${b.issuer('acme')}/token`, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .setIssuedAt()
      .sign(privateKey);
    const token = await cc('acme', acme, { dpop: proof });
    const jkt = await calculateJwkThumbprint(jwk);
    expect(decodeJwt(token).cnf).toEqual({ jkt });
    const r = await introspect(token);
    expect(r.body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt }, client_id: acme.client_id });
    // A Bearer token says so, and has no cnf.
    const bearer = (await introspect(await cc('acme', acme))).body;
    expect(bearer.token_type).toBe('Bearer');
    expect(bearer).not.toHaveProperty('cnf');
  });

  it('an exchanged token introspects with its act, nested for a chain (and not its exchange lineage)', async () => {
    const actor = async () => ({ actor_token: await cc('vendor', agent), actor_token_type: AT });
    const first = await agentToken(await actor());
    const act = { sub: agent.client_id, iss: b.issuer('vendor') };
    expect(decodeJwt(first).act).toEqual(act);
    expect(decodeJwt(first).exchanged_from).toBeDefined();
    const r = await introspect(first);
    expect(r.body).toMatchObject({
      active: true,
      sub: agent.client_id,
      client_id: agent.client_id,
      tenant_id: 'acme',
      iss: b.issuer('acme'),
      aud: acme.resource,
      scope: 'tickets:read',
      token_type: 'Bearer',
      act,
    });
    expect(r.body).not.toHaveProperty('exchanged_from');

    // Re-exchanged with an actor again: the previous act nests inside the new one.
    const second = await agentToken(await actor(), first);
    expect((await introspect(second)).body).toMatchObject({ active: true, act: { ...act, act } });
    // Without an actor, an agent exchanging its own credential acts for itself: no act.
    expect((await introspect(await agentToken())).body).not.toHaveProperty('act');
  });

  it('garbage of every kind is a 4xx or {active:false}, never a 5xx', async () => {
    const token = await cc('acme', acme);
    const [h, p] = token.split('.') as [string, string, string];
    const tokens = [
      'garbage', '.', '..', 'a.b.c', `${h}.${p}.`, `${h}.${p}`, `${token}.x`, token.toUpperCase(), `${token} `, ` ${token}`, '\u0000', 'ä.ö.ü', '%',
      `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${p}.`,
      `${Buffer.from('{"alg":"HS256","typ":"at+jwt","kid":"x"}').toString('base64url')}.${p}.AAAA`,
    ];
    for (const t of tokens) {
      const r = await introspect(t);
      expect(r.status, JSON.stringify(t)).toBe(200);
      expect(r.body).toEqual({ active: false });
      expect((await post('acme', 'revoke', { token: t }, basic(rs))).status).toBe(200);
    }
    // Malformed bodies and credentials.
    const raw = [
      { headers: { ...FORM, ...basic(rs) }, body: 'token=%E0%A4%A&%%%=&&&=' },
      { headers: { ...FORM, authorization: 'Basic !!!' }, body: `token=${token}` },
      { headers: { ...FORM, authorization: 'Basic bm9jb2xvbg==' }, body: `token=${token}` },
      { headers: { ...FORM, authorization: `Basic ${Buffer.from('%ZZ:%ZZ').toString('base64')}` }, body: `token=${token}` },
      { headers: { ...FORM, authorization: `Basic ${Buffer.from(`${'x'.repeat(5000)}:y`).toString('base64')}` }, body: `token=${token}` },
      { headers: { ...FORM, authorization: 'Bearer x' }, body: `token=${token}` },
      { headers: { ...FORM }, body: `token=${token}&client_assertion_type=${encodeURIComponent(ASSERTION_TYPE)}&client_assertion=a.b.c` },
      { headers: { ...FORM }, body: `token=${token}&client_assertion_type=${encodeURIComponent(ASSERTION_TYPE)}&client_assertion=${encodeURIComponent(`x.${Buffer.from('{"sub":{"$ne":1}}').toString('base64url')}.y`)}` },
      { headers: { 'content-type': 'application/x-www-form-urlencoded; charset=latin1', ...basic(rs) }, body: `token=${token}` },
    ];
    for (const endpoint of ['introspect', 'revoke']) {
      for (const init of raw) {
        const r = await send('acme', endpoint, init);
        expect(r.status, `${endpoint} ${JSON.stringify(init)}: ${r.text}`).toBeLessThan(500);
      }
    }
    // Signed with acme's own key, but with a jti Bulkhead never mints (longer than the
    // revocation list holds): not one of ours, at either endpoint (revoking it was a 500).
    const { signer } = await b.broker.services.keys.loadForIssuer('acme');
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: b.issuer('acme'), sub: acme.client_id, aud: acme.resource, client_id: acme.client_id, tenant_id: 'acme', iat: now, exp: now + 60 };
    const signingKey = await importJWK(signer!.privateJwk, signer!.alg);
    const sign = (jti: string) => new SignJWT({ ...claims, jti }).setProtectedHeader({ alg: signer!.alg, kid: signer!.kid, typ: 'at+jwt' }).sign(signingKey);
    const longJti = await sign('j'.repeat(100));
    expect(await introspect(longJti)).toMatchObject({ status: 200, body: { active: false } });
    expect(await post('acme', 'revoke', { token: longJti }, basic(acme))).toMatchObject({ status: 200, body: {} });
    // Control: the same token with a jti of the longest length kept is active, and revocable.
    const control = await sign('j'.repeat(64));
    expect((await introspect(control)).body.active).toBe(true);
    expect((await post('acme', 'revoke', { token: control }, basic(acme))).status).toBe(200);
    expect((await introspect(control)).body).toEqual({ active: false });

    // An unknown tenant is a 404, not an error; none of the above revoked the token.
    expect((await introspect(token, basic(rs), 'nosuch')).status).toBe(404);
    expect((await post('acme', 'introspect', { token }, basic(rs))).body.active).toBe(true);
  });

  it('no answer above was a 5xx or carried a stack trace or internal detail', () => {
    expect(answers.length).toBeGreaterThan(100);
    for (const a of answers) {
      expect(a.status, a.text).toBeLessThan(500);
      expect(a.text).not.toMatch(/\bat [\w.<>]+ \(|node:internal|node_modules|\.ts:\d+|prisma|Error: /i);
    }
  });
});
