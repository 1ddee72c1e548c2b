import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { tokenRequest, type TestBroker } from '../support/broker.js';

/** A DPoP key pair with its public JWK and RFC 7638 thumbprint. */
export interface DpopKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  jkt: string;
}

export async function dpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

/** A DPoP proof (RFC 9449 §4.2) for `htm`/`htu`, with `ath` for `accessToken` unless overridden. */
export async function dpopProof(
  key: DpopKey,
  req: { htm: string; htu: string; accessToken?: string },
  claims: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT({
    jti: randomUUID(),
    htm: req.htm,
    htu: req.htu,
    iat: Math.floor(Date.now() / 1000),
    ...(req.accessToken ? { ath: createHash('sha256').update(req.accessToken).digest('base64url') } : {}),
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .sign(key.privateKey);
}

/** A client-credentials token from the real broker; DPoP-bound to `key` when given. */
export async function issueToken(
  b: TestBroker,
  tenant: string,
  client: { client_id: string; client_secret?: string },
  form: Record<string, string> = {},
  key?: DpopKey,
): Promise<string> {
  const headers = key ? { dpop: await dpopProof(key, { htm: 'POST', htu: `${b.issuer(tenant)}/token` }) } : undefined;
  const res = await tokenRequest(b, tenant, { grant_type: 'client_credentials', ...form }, {
    basic: [client.client_id, client.client_secret!],
    ...(headers ? { headers } : {}),
  });
  if (res.status !== 200) throw new Error(`token request refused: ${JSON.stringify(res.body)}`);
  return res.body.access_token as string;
}

/**
 * A token signed with the tenant's real active key, with whatever claims and header the test
 * wants: for the checks a broker would never let us reach (bad iss, typ, nbf, tenant_id...).
 */
export async function forgeWithTenantKey(
  b: TestBroker,
  keyTenant: string,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const { signer } = await b.broker.services.keys.loadForIssuer(keyTenant);
  if (!signer) throw new Error(`tenant ${keyTenant} has no signer`);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt', ...header })
    .sign(await importJWK(signer.privateJwk, signer.alg));
}

/** Claims like Bulkhead's own, for `tenant` and `audience`, valid now. */
export function bulkheadClaims(b: TestBroker, tenant: string, audience: string | string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: b.issuer(tenant),
    sub: 'cl_forged',
    aud: audience,
    client_id: 'cl_forged',
    tenant_id: tenant,
    scope: 'tickets:read',
    iat: now,
    exp: now + 300,
    jti: randomUUID(),
    ...extra,
  };
}

/** A fetch that counts JWKS requests per URL and can be told to fail them. */
export function countingFetch() {
  const jwks = new Map<string, number>();
  let failWith: number | undefined;
  const impl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url.endsWith('/jwks')) {
      jwks.set(url, (jwks.get(url) ?? 0) + 1);
      if (failWith !== undefined) return new Response('{"error":"down"}', { status: failWith });
    }
    return fetch(input, init);
  }) as typeof fetch;
  return {
    fetch: impl,
    /** JWKS requests so far, for one URL or in total. */
    count: (url?: string) => (url ? jwks.get(url) ?? 0 : [...jwks.values()].reduce((a, n) => a + n, 0)),
    fail(status: number | undefined) {
      failWith = status;
    },
  };
}

/**
 * A tiny RFC 7662 introspection endpoint: client_secret_basic, form `token`, answers
 * `{"active": false}` for revoked `jti`s and anything it cannot parse, else `active: true` with
 * the token's claims. `answer` overrides the response (for outage and malformed-answer cases).
 */
export async function startIntrospectionStub(credentials: { clientId: string; clientSecret: string }) {
  const revoked = new Set<string>();
  const requests: Array<{ path: string; authorization?: string; contentType?: string; form: URLSearchParams }> = [];
  let answer: { status: number; body: string } | undefined;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      const form = new URLSearchParams(raw);
      requests.push({ path: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'], form });
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      if (answer) return send(answer.status, answer.body);
      const expected = `Basic ${Buffer.from(`${credentials.clientId}:${credentials.clientSecret}`).toString('base64')}`;
      if (req.method !== 'POST' || req.headers.authorization !== expected) return send(401, { error: 'invalid_client' });
      if (!req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) return send(400, { error: 'invalid_request' });
      const token = form.get('token');
      if (!token) return send(400, { error: 'invalid_request' });
      let claims: Record<string, unknown>;
      try {
        claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
      } catch {
        return send(200, { active: false });
      }
      if (typeof claims.jti !== 'string' || revoked.has(claims.jti)) return send(200, { active: false });
      return send(200, { active: true, ...claims });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    revoke: (jti: string) => revoked.add(jti),
    answerWith(status: number | undefined, body = '') {
      answer = status === undefined ? undefined : { status, body };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
