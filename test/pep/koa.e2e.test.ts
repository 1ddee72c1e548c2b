import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import {
  createVerifier, protectedResourceMetadataUrl, requireToken, serveProtectedResourceMetadata, type TokenState,
} from '../../src/pep/index.js';
import { seedTenant, startTestBroker, type TestBroker } from '../support/broker.js';
import { dpopKey, dpopProof, issueToken, type DpopKey } from './support.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
type Client = { client_id: string; client_secret?: string };

/**
 * A multi-tenant "tickets" API protected only by bulkhead/pep, over real HTTP, with tokens from
 * a real broker: tenant A's token reads A's tickets and is refused at B's; RFC 6750 challenges;
 * RFC 9728 discovery driven by oauth4webapi as the client, from the 401 to the data.
 */
describe('bulkhead/pep Koa middleware: the tickets API (pglite)', () => {
  let b: TestBroker;
  let server: Server;
  let rs: string;
  let acme: Client;
  let globex: Client;
  let acmeWriter: Client;
  const tickets: Record<string, Array<{ id: number; title: string }>> = {
    acme: [{ id: 1, title: 'acme: printer on fire' }],
    globex: [{ id: 1, title: 'globex: doomsday device overdue' }],
  };
  const resourceOf = (tenant: string) => `${rs}/tenants/${tenant}/tickets`;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${rs}${path}`, { headers });

  function ticketsApi(brokerUrl: string) {
    const verifier = createVerifier({ brokerUrl, audience: resourceOf });
    const guard = (scopes: string[]) => requireToken({
      verifier,
      tenantFrom: (ctx) => ctx.params?.tenant,
      scopes,
      realm: 'tickets',
      resourceMetadata: (ctx) => protectedResourceMetadataUrl(resourceOf(ctx.params?.tenant ?? '')),
    });
    const router = new Router<TokenState>();
    router.get('/tenants/:tenant/tickets', guard(['tickets:read']), (ctx) => {
      ctx.body = { tenant: ctx.state.tenant, client_id: ctx.state.token.client_id, dpop_jkt: ctx.state.dpopJkt ?? null, tickets: tickets[ctx.state.tenant] ?? [] };
    });
    router.post('/tenants/:tenant/tickets', guard(['tickets:write']), (ctx) => {
      const list = (tickets[ctx.state.tenant] ??= []);
      list.push({ id: list.length + 1, title: `by ${ctx.state.token.client_id}` });
      ctx.status = 201;
      ctx.body = list.at(-1);
    });
    // A single-tenant route whose middleware builds its own verifier, requiring DPoP.
    router.get('/acme-vault', requireToken({
      verifierOptions: { brokerUrl, tenant: 'acme', audience: resourceOf('acme'), dpop: { required: true } },
      tenantFrom: () => 'acme',
    }), (ctx) => {
      ctx.body = { tenant: ctx.state.tenant };
    });
    return new Koa()
      .use(serveProtectedResourceMetadata({
        brokerUrl,
        resolve: (resource) => {
          const m = /^\/tenants\/([^/]+)\/tickets$/.exec(new URL(resource).pathname);
          return m && m[1]! in tickets ? { tenant: m[1]!, scopes: ['tickets:read', 'tickets:write'], dpop: true, resourceName: 'Tickets' } : undefined;
        },
      }))
      .use(router.routes())
      .use(router.allowedMethods());
  }

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    rs = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    server.on('request', ticketsApi(b.url).callback());
    acme = await seedTenant(b, 'acme', { resource: resourceOf('acme') });
    acmeWriter = await seedTenant(b, 'acme', { resource: resourceOf('acme'), clientName: 'writer', clientScopes: ['tickets:read', 'tickets:write'] });
    globex = await seedTenant(b, 'globex', { resource: resourceOf('globex') });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await b?.close();
  });

  const tokenOf = (tenant: 'acme' | 'globex', client?: Client, key?: DpopKey) =>
    issueToken(b, tenant, client ?? (tenant === 'acme' ? acme : globex), { resource: resourceOf(tenant) }, key);

  it('tenant A\'s token reads A\'s tickets; the claims and tenant are on ctx.state', async () => {
    const token = await tokenOf('acme');
    const res = await get('/tenants/acme/tickets', { authorization: `Bearer ${token}` });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ tenant: 'acme', client_id: acme.client_id, dpop_jkt: null, tickets: tickets.acme });
  });

  it('tenant A\'s token at B\'s tickets is 401 invalid_token, and the other way round', async () => {
    const res = await get('/tenants/globex/tickets', { authorization: `Bearer ${await tokenOf('acme')}` });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(
      new RegExp(`^Bearer realm="tickets", error="invalid_token", error_description="[^"]+", resource_metadata="${protectedResourceMetadataUrl(resourceOf('globex'))}", DPoP algs="[^"]+"$`),
    );
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'the access token belongs to another tenant' });

    const back = await get('/tenants/acme/tickets', { authorization: `Bearer ${await tokenOf('globex')}` });
    expect(back.status).toBe(401);
    expect((await back.json()).error).toBe('invalid_token');
    // Control: B's token at B.
    expect((await get('/tenants/globex/tickets', { authorization: `Bearer ${await tokenOf('globex')}` })).status).toBe(200);
  });

  it('unknown or malformed tenants in the path are 401 invalid_token', async () => {
    const token = await tokenOf('acme');
    for (const path of ['/tenants/ghost/tickets', '/tenants/ACME/tickets', '/tenants/..%2Facme/tickets', '/tenants/acme%00/tickets']) {
      const res = await get(path, { authorization: `Bearer ${token}` });
      expect(res.status, path).toBe(401);
      expect((await res.json()).error).toBe('invalid_token');
    }
  });

  it('no token: 401 with a challenge that names no error (RFC 6750 §3.1) and points at the RFC 9728 metadata', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }] as Array<Record<string, string>>) {
      const res = await get('/tenants/acme/tickets', headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe(
        `Bearer realm="tickets", resource_metadata="${protectedResourceMetadataUrl(resourceOf('acme'))}", DPoP algs="${createVerifier({ brokerUrl: b.url, audience: 'x' }).dpopAlgorithms.join(' ')}"`,
      );
      expect((await res.json()).error).toBeUndefined();
    }
  });

  it('a token in the query string is 400 invalid_request, with or without a header', async () => {
    const token = await tokenOf('acme');
    for (const headers of [{}, { authorization: `Bearer ${token}` }] as Array<Record<string, string>>) {
      const res = await get(`/tenants/acme/tickets?access_token=${token}`, headers);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'access tokens are accepted only in the Authorization header' });
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="tickets", error="invalid_request"/);
    }
  });

  it('two Authorization headers are 400 invalid_request (node would silently keep the first)', async () => {
    const token = await tokenOf('acme');
    const { port } = new URL(rs);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.end(`GET /tenants/acme/tickets HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer garbage\r\nConnection: close\r\n\r\n`);
      });
      let data = '';
      socket.on('data', (chunk) => (data += chunk));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain('more than one Authorization header');
    // And one header line holding two credentials is malformed, not "the first one".
    const joined = await get('/tenants/acme/tickets', { authorization: `Bearer ${token}, Bearer ${token}` });
    expect(joined.status).toBe(400);
  });

  it('a missing scope is 403 insufficient_scope with scope= in the challenge; with it, the write happens', async () => {
    const reader = await tokenOf('acme');
    const res = await fetch(`${rs}/tenants/acme/tickets`, { method: 'POST', headers: { authorization: `Bearer ${reader}` } });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="tickets", error="insufficient_scope", error_description="[^"]+", scope="tickets:write", resource_metadata="/);
    expect(await res.json()).toMatchObject({ error: 'insufficient_scope', scope: 'tickets:write' });

    const writer = await issueToken(b, 'acme', acmeWriter, { resource: resourceOf('acme'), scope: 'tickets:read tickets:write' });
    const ok = await fetch(`${rs}/tenants/acme/tickets`, { method: 'POST', headers: { authorization: `Bearer ${writer}` } });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ title: `by ${acmeWriter.client_id}` });
  });

  it('DPoP: a bound token with a proof for this request passes; as Bearer or with a proof for another URL it does not', async () => {
    const key = await dpopKey();
    const bound = await tokenOf('acme', acme, key);
    const url = `${rs}/tenants/acme/tickets`;
    const ok = await get('/tenants/acme/tickets', { authorization: `DPoP ${bound}`, dpop: await dpopProof(key, { htm: 'GET', htu: url, accessToken: bound }) });
    expect(ok.status).toBe(200);
    expect((await ok.json()).dpop_jkt).toBe(key.jkt);

    const asBearer = await get('/tenants/acme/tickets', { authorization: `Bearer ${bound}` });
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP realm="tickets", error="invalid_token", .*algs="/);

    const elsewhere = await get('/tenants/acme/tickets', { authorization: `DPoP ${bound}`, dpop: await dpopProof(key, { htm: 'GET', htu: `${rs}/tenants/globex/tickets`, accessToken: bound }) });
    expect(elsewhere.status).toBe(401);
    expect(elsewhere.headers.get('www-authenticate')).toMatch(/^DPoP realm="tickets", error="invalid_dpop_proof"/);
    expect((await elsewhere.json()).error).toBe('invalid_dpop_proof');
  });

  it('RFC 9728 discovery with oauth4webapi, from the 401 to the tickets, DPoP-bound on the way', async () => {
    const resource = new URL(resourceOf('acme'));
    // oauth4webapi parses the challenge of a refused request; the Bearer one points at the metadata.
    const refusal = await oauth.protectedResourceRequest('not-a-token', 'GET', resource, undefined, undefined, insecure).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenges = (refusal as oauth.WWWAuthenticateChallengeError).cause;
    expect(challenges.map((c) => c.scheme)).toEqual(['bearer', 'dpop']);
    expect(challenges[0]!.parameters).toMatchObject({ realm: 'tickets', error: 'invalid_token' });
    expect(challenges[1]!.parameters.algs).toContain('ES256');
    const metadataUrl = challenges[0]!.parameters.resource_metadata!;
    expect(metadataUrl).toBe(`${rs}/.well-known/oauth-protected-resource/tenants/acme/tickets`);

    const rsMeta = await oauth.processResourceDiscoveryResponse(resource, await oauth.resourceDiscoveryRequest(resource, insecure));
    expect(rsMeta).toMatchObject({
      resource: resource.href,
      authorization_servers: [b.issuer('acme')],
      scopes_supported: ['tickets:read', 'tickets:write'],
      bearer_methods_supported: ['header'],
      resource_name: 'Tickets',
      dpop_bound_access_tokens_required: false,
    });
    expect(rsMeta.dpop_signing_alg_values_supported).toContain('ES256');

    const issuer = new URL(rsMeta.authorization_servers![0]!);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    const client: oauth.Client = { client_id: acme.client_id };
    const dpop = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    const tokenRes = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(acme.client_secret!), new URLSearchParams({ resource: rsMeta.resource, scope: 'tickets:read' }), { ...insecure, DPoP: dpop });
    const tokens = await oauth.processClientCredentialsResponse(as, client, tokenRes);
    expect(tokens.token_type).toBe('dpop');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ aud: resource.href, tenant_id: 'acme' });

    const res = await oauth.protectedResourceRequest(tokens.access_token, 'GET', resource, undefined, undefined, { ...insecure, DPoP: dpop });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ tenant: 'acme', tickets: tickets.acme });
    // oauth4webapi's proof for B's URL with A's token: refused (the client surfaces the DPoP challenge).
    await expect(oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(resourceOf('globex')), undefined, undefined, { ...insecure, DPoP: dpop }))
      .rejects.toMatchObject({ status: 401 });
  });

  it('the metadata document is served only for known resources and only to GET/HEAD', async () => {
    expect((await fetch(`${rs}/.well-known/oauth-protected-resource/tenants/globex/tickets`)).status).toBe(200);
    const globexMeta = await (await fetch(`${rs}/.well-known/oauth-protected-resource/tenants/globex/tickets`)).json();
    expect(globexMeta.authorization_servers).toEqual([b.issuer('globex')]);
    expect((await fetch(`${rs}/.well-known/oauth-protected-resource/tenants/ghost/tickets`)).status).toBe(404);
    expect((await fetch(`${rs}/.well-known/oauth-protected-resource`)).status).toBe(404);
    const post = await fetch(`${rs}/.well-known/oauth-protected-resource/tenants/acme/tickets`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('verifierOptions: a route with its own verifier requiring DPoP challenges with DPoP only', async () => {
    const missing = await get('/acme-vault');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^DPoP algs="[^"]+"$/);
    const bearer = await get('/acme-vault', { authorization: `Bearer ${await tokenOf('acme')}` });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token", error_description="this resource requires a DPoP-bound token", algs="/);
    const key = await dpopKey();
    const bound = await tokenOf('acme', acme, key);
    const ok = await get('/acme-vault', { authorization: `DPoP ${bound}`, dpop: await dpopProof(key, { htm: 'GET', htu: `${rs}/acme-vault`, accessToken: bound }) });
    expect(ok.status).toBe(200);
    const globexKey = await dpopKey();
    const foreign = await tokenOf('globex', globex, globexKey);
    const refused = await get('/acme-vault', { authorization: `DPoP ${foreign}`, dpop: await dpopProof(globexKey, { htm: 'GET', htu: `${rs}/acme-vault`, accessToken: foreign }) });
    expect(refused.status).toBe(401);
    expect((await refused.json()).error_description).toBe('the access token belongs to another tenant');
  });

  it('routes without requireToken are untouched', async () => {
    expect((await get('/nothing-here')).status).toBe(404);
  });
});
