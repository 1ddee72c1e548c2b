import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey } from 'jose';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { MAX_JWT_LENGTH } from '../../src/shared/jwt-size.js';
import { MAX_HEADER_BYTES } from '../../src/server.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Pads a claim so the signed JWT is just over (or, for the control, well under) the bound. */
const OVER = { pad: 'x'.repeat(MAX_JWT_LENGTH) };
const UNDER = { pad: 'x'.repeat(100) };

/** One raw HTTP/1.1 request over a socket; returns the status line's code (Node answers 431 itself). */
function rawStatus(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      data += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m) {
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed without a status line: ${JSON.stringify(data.slice(0, 100))}`)));
  });
}

/**
 * Size bounds enforced before parsing work (issue 5): the request head (Node's `maxHeaderSize`,
 * set explicitly) and every JWT the broker parses (one bound, src/shared/jwt-size.ts). Each JWT
 * case sends a *genuine* JWT (right key, right claims) just past the bound, with a control of the
 * same JWT under it that is accepted: so each test fails if its bound is removed, and no
 * response is a 5xx.
 */
describe('size limits before parsing work (pglite)', () => {
  let b: TestBroker;
  let port: number;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let jwtClient: Awaited<ReturnType<typeof seedTenant>>;
  let jwtKey: CryptoKey;
  let agent: { client_id: string; client_secret: string };

  /** `claims` signed as an access token of `tenant` with its real signing key. */
  async function signAs(tenant: string, claims: Record<string, unknown>) {
    const { signer } = await b.broker.services.keys.loadForIssuer(tenant);
    return new SignJWT(claims).setProtectedHeader({ alg: signer!.alg, kid: signer!.kid, typ: 'at+jwt' }).sign(await importJWK(signer!.privateJwk, signer!.alg));
  }
  /** A real token re-signed with extra claims (a pad), by the same tenant's key. */
  async function padded(token: string, tenant: string, extra: Record<string, unknown>) {
    const jwt = await signAs(tenant, { ...decodeJwt(token), ...extra });
    expect(jwt.length > MAX_JWT_LENGTH).toBe(extra === OVER);
    return jwt;
  }
  const assertion = (extra: Record<string, unknown>, aud = b.issuer('acme')) =>
    new SignJWT(extra).setProtectedHeader({ alg: 'ES256' }).setIssuer(jwtClient.client_id).setSubject(jwtClient.client_id)
      .setAudience(aud).setIssuedAt().setExpirationTime('60s').setJti(randomBytes(12).toString('base64url')).sign(jwtKey);
  const form = async (tenant: string, endpoint: string, body: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await fetch(`${b.url}/t/${tenant}/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(body) });
    const out = { status: res.status, headers: res.headers, body: (await res.json().catch(() => undefined)) as any };
    expect(out.status, JSON.stringify(out.body)).toBeLessThan(500);
    return out;
  };
  const basic = (c: { client_id: string; client_secret?: string }) => ({ authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}` });
  const ccToken = async (tenant: string, c: { client_id: string; client_secret?: string }, extra: Record<string, string> = {}) => {
    const r = await tokenRequest(b, tenant, { grant_type: 'client_credentials', ...extra }, { basic: [c.client_id, c.client_secret!] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.access_token as string;
  };

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    port = b.config.port;
    acme = await seedTenant(b, 'acme');
    const pair = await generateKeyPair('ES256', { extractable: true });
    jwtKey = pair.privateKey;
    jwtClient = await seedTenant(b, 'acme', { clientName: 'jwt-svc', auth: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', use: 'sig' }] } });
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'bot' })).body;
    await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [acme.resource] });
  });
  afterAll(() => b?.close());

  it(`the request head is bounded at ${MAX_HEADER_BYTES} bytes, below Node's default: past it Node answers 431`, async () => {
    const head = (pad: number, path = '/healthz') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(pad)}\r\nConnection: close\r\n\r\n`;
    expect(MAX_HEADER_BYTES).toBeLessThan(16 * 1024);
    expect(await rawStatus(port, head(MAX_HEADER_BYTES - 1024))).toBe(200);
    // Over this broker's bound but under Node's default (16 KiB): only the explicit setting refuses it.
    expect(await rawStatus(port, head(MAX_HEADER_BYTES + 1024))).toBe(431);
    expect(await rawStatus(port, head(MAX_HEADER_BYTES + 1024, '/t/acme/token'))).toBe(431);
    // The broker still serves afterwards.
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
  });

  it('admin bearer token: one past the bound is 401 invalid_token before it is decoded', async () => {
    const { signer } = await b.broker.services.keys.loadForIssuer('system');
    const admin = decodeJwt(await b.adminToken());
    const sign = async (extra: Record<string, unknown>) => new SignJWT({ ...admin, ...extra })
      .setProtectedHeader({ alg: signer!.alg, kid: signer!.kid, typ: 'at+jwt' }).sign(await importJWK(signer!.privateJwk, signer!.alg));
    const call = async (token: string) => {
      const res = await fetch(`${b.url}/admin/tenants`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.json() };
    };
    expect((await call(await sign(UNDER))).status).toBe(200);
    const over = await call(await sign(OVER));
    expect(over).toEqual({
      status: 401,
      challenge: `Bearer realm="bulkhead-admin", error="invalid_token", error_description="the access token must not exceed ${MAX_JWT_LENGTH} characters"`,
      body: { error: 'invalid_token', error_description: `the access token must not exceed ${MAX_JWT_LENGTH} characters` },
    });
  });

  it('subject_token and actor_token: one past the bound is invalid_request (RFC 8693 §2.2.2)', async () => {
    const credential = await ccToken('vendor', agent);
    const exchange = (subject: string, actor?: string) => form('acme', 'token', {
      grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN, resource: acme.resource,
      ...(actor ? { actor_token: actor, actor_token_type: ACCESS_TOKEN } : {}),
    }, basic(agent));
    const control = await exchange(await padded(credential, 'vendor', UNDER));
    expect(control.status, JSON.stringify(control.body)).toBe(200);
    expect(await exchange(await padded(credential, 'vendor', OVER))).toMatchObject({
      status: 400, body: { error: 'invalid_request', error_description: `subject_token: must not exceed ${MAX_JWT_LENGTH} characters` },
    });
    expect(await exchange(credential, await padded(credential, 'vendor', OVER))).toMatchObject({
      status: 400, body: { error: 'invalid_request', error_description: `actor_token: must not exceed ${MAX_JWT_LENGTH} characters` },
    });
  });

  it('introspection and revocation: a token past the bound is not one of ours (RFC 7662 §2.2, RFC 7009 §2.2) and is not decoded', async () => {
    const token = await ccToken('acme', acme, { resource: acme.resource });
    const [under, over] = [await padded(token, 'acme', UNDER), await padded(token, 'acme', OVER)];
    expect((await form('acme', 'introspect', { token: under }, basic(acme))).body.active).toBe(true);
    expect(await form('acme', 'introspect', { token: over }, basic(acme))).toMatchObject({ status: 200, body: { active: false } });
    // Revoking the oversize copy revokes nothing: its jti, shared with the others, stays active.
    expect(await form('acme', 'revoke', { token: over }, basic(acme))).toMatchObject({ status: 200, body: {} });
    expect((await form('acme', 'introspect', { token }, basic(acme))).body.active).toBe(true);
  });

  it('client_assertion past the bound: 401 invalid_client with a challenge, at /token, /introspect and /revoke', async () => {
    const token = await ccToken('acme', acme, { resource: acme.resource });
    const auth = async (extra: Record<string, unknown>) => ({ client_id: jwtClient.client_id, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(extra) });
    const requests = {
      token: { grant_type: 'client_credentials', resource: jwtClient.resource },
      introspect: { token },
      revoke: { token: 'not-a-token' },
    };
    for (const [endpoint, body] of Object.entries(requests)) {
      const control = await form('acme', endpoint, { ...body, ...(await auth(UNDER)) });
      expect(control.status, `${endpoint}: ${JSON.stringify(control.body)}`).toBe(200);
      const big = await auth(OVER);
      expect(big.client_assertion.length).toBeGreaterThan(MAX_JWT_LENGTH);
      const r = await form('acme', endpoint, { ...body, ...big });
      expect({ status: r.status, body: r.body }, endpoint).toEqual({ status: 401, body: { error: 'invalid_client', error_description: `client_assertion must not exceed ${MAX_JWT_LENGTH} characters` } });
      expect(r.headers.get('www-authenticate'), endpoint).toBe(`Basic realm="${b.issuer('acme')}"`);
    }
  });

  it('DPoP proof past the bound: invalid_dpop_proof at the token endpoint (RFC 9449 §5)', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const proof = (extra: Record<string, unknown>) => new SignJWT({ htm: 'POST', htu: `${b.issuer('acme')}/token`, ...extra })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().setJti(randomBytes(12).toString('base64url')).sign(privateKey);
    const cc = async (dpop: string) => form('acme', 'token', { grant_type: 'client_credentials', resource: acme.resource }, { ...basic(acme), dpop });
    const control = await cc(await proof(UNDER));
    expect(control.status, JSON.stringify(control.body)).toBe(200);
    expect(control.body.token_type).toBe('DPoP');
    const big = await proof(OVER);
    expect(big.length).toBeGreaterThan(MAX_JWT_LENGTH);
    expect(await cc(big)).toMatchObject({ status: 400, body: { error: 'invalid_dpop_proof', error_description: 'DPoP header is too large' } });
  });
});
