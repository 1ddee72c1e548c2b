import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import { createTicketsApp, DEFAULT_AUDIENCE, SEED_TICKETS } from '../../examples/tickets-api/app.mjs';
import { seedTenant, startTestBroker, type TestBroker } from '../support/broker.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const SERVER = fileURLToPath(new URL('../../examples/tickets-api/server.mjs', import.meta.url));
/** The README tour's resource indicator, registered in acme and in globex for this one API. */
const AUDIENCE = DEFAULT_AUDIENCE;

type Client = { client_id: string; client_secret: string };

async function listen(handler?: RequestListener): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
const close = (server?: Server) => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));

/**
 * The demo tickets API (examples/tickets-api, `npm run demo`) against a real broker, with
 * oauth4webapi as the client: acme's token reads acme's tickets and is refused at globex's,
 * scopes are enforced, RFC 9728 metadata names the tenant issuer and leads to a working token,
 * and an agent's exchanged token reads (and, with tickets:write, writes) acme's tickets.
 * The example imports the built `bulkhead/pep`: `npm test` builds dist/ first.
 */
describe('examples/tickets-api end to end (pglite)', () => {
  let b: TestBroker;
  let api: { server: Server; url: string };
  let acme: Client;
  let globex: Client;
  let agent: Client;

  async function authorizationServer(issuer: string) {
    const url = new URL(issuer);
    return oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, { algorithm: 'oauth2', ...insecure }));
  }

  /** Client credentials at the tenant's token endpoint, as a real client does it. */
  async function clientToken(tenant: string, client: Client, params: Record<string, string> = {}): Promise<string> {
    const as = await authorizationServer(b.issuer(tenant));
    const c: oauth.Client = { client_id: client.client_id };
    const res = await oauth.clientCredentialsGrantRequest(as, c, oauth.ClientSecretBasic(client.client_secret),
      new URLSearchParams({ resource: AUDIENCE, scope: 'tickets:read', ...params }), insecure);
    return (await oauth.processClientCredentialsResponse(as, c, res)).access_token;
  }

  /** The agent's credential at its home tenant, exchanged at acme (RFC 8693) for `scope`. */
  async function agentToken(scope: string): Promise<string> {
    const c: oauth.Client = { client_id: agent.client_id };
    const home = await authorizationServer(b.issuer('vendor'));
    const cred = (await oauth.processClientCredentialsResponse(home, c,
      await oauth.clientCredentialsGrantRequest(home, c, oauth.ClientSecretBasic(agent.client_secret), new URLSearchParams(), insecure))).access_token;
    const as = await authorizationServer(b.issuer('acme'));
    const res = await oauth.genericTokenEndpointRequest(as, c, oauth.ClientSecretBasic(agent.client_secret), TE,
      new URLSearchParams({ subject_token: cred, subject_token_type: AT, resource: AUDIENCE, scope }), insecure);
    return (await oauth.processGenericTokenEndpointResponse(as, c, res)).access_token;
  }

  const call = (path: string, token?: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) } });
  const post = (path: string, token: string, body: unknown) =>
    call(path, token, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const metadataUrl = (tenant: string) => `${api.url}/.well-known/oauth-protected-resource/tenants/${tenant}/tickets`;

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    // Each tenant registers the tickets API under the same resource indicator, with its scopes,
    // and has a service allowed tickets:read only.
    acme = (await seedTenant(b, 'acme', { resource: AUDIENCE, resourceScopes: ['tickets:read', 'tickets:write'] })) as Client;
    globex = (await seedTenant(b, 'globex', { resource: AUDIENCE, resourceScopes: ['tickets:read', 'tickets:write'] })) as Client;
    // An agent from a vendor tenant, installed into acme (only) for both scopes.
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'triage-bot' })).body;
    await b.admin('POST', '/tenants/acme/delegations', {
      client_id: agent.client_id,
      scopes: ['tickets:read', 'tickets:write'],
      resources: [AUDIENCE],
      token_ttl: 120,
    });
    api = await listen(createTicketsApp({ brokerUrl: b.url }).callback());
  });
  afterAll(async () => {
    await close(api?.server);
    await b?.close();
  });

  it("acme's token reads acme's tickets", async () => {
    const token = await clientToken('acme', acme);
    expect(decodeJwt(token)).toMatchObject({ iss: b.issuer('acme'), aud: AUDIENCE, tenant_id: 'acme', scope: 'tickets:read' });
    const res = await call('/tenants/acme/tickets', token);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ tenant: 'acme', client_id: acme.client_id, tickets: SEED_TICKETS.acme });
    // With oauth4webapi's resource request too.
    const viaClient = await oauth.protectedResourceRequest(token, 'GET', new URL(`${api.url}/tenants/acme/tickets`), undefined, undefined, insecure);
    expect(viaClient.status).toBe(200);
  });

  it("acme's token at globex's tickets: 401 with an RFC 6750 invalid_token challenge; globex's own token reads them", async () => {
    const token = await clientToken('acme', acme);
    const res = await call('/tenants/globex/tickets', token);
    expect(res.status).toBe(401);
    const header = res.headers.get('www-authenticate')!;
    expect(header).toMatch(/^Bearer realm="tickets", error="invalid_token", error_description="the access token belongs to another tenant", /);
    expect(header).toContain(`resource_metadata="${metadataUrl('globex')}"`);
    expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'the access token belongs to another tenant' });

    // What a real client makes of it: a parsed Bearer challenge with error=invalid_token.
    const refusal = await oauth.protectedResourceRequest(token, 'GET', new URL(`${api.url}/tenants/globex/tickets`), undefined, undefined, insecure)
      .catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const bearer = (refusal as oauth.WWWAuthenticateChallengeError).cause.find((c) => c.scheme === 'bearer');
    expect(bearer?.parameters).toMatchObject({ realm: 'tickets', error: 'invalid_token' });

    const own = await call('/tenants/globex/tickets', await clientToken('globex', globex));
    expect(own.status).toBe(200);
    expect(await own.json()).toEqual({ tenant: 'globex', client_id: globex.client_id, tickets: SEED_TICKETS.globex });
    // And globex's token at acme: the same refusal the other way round.
    expect((await call('/tenants/acme/tickets', await clientToken('globex', globex))).status).toBe(401);
  });

  it('tenants the API does not serve, garbage and missing tokens are refused the same way', async () => {
    const token = await clientToken('acme', acme);
    for (const path of ['/tenants/vendor/tickets', '/tenants/ghost/tickets', '/tenants/__proto__/tickets', '/tenants/ACME/tickets']) {
      const res = await call(path, token);
      expect(res.status, path).toBe(401);
      expect((await res.json()).error, path).toBe('invalid_token');
    }
    const garbage = await call('/tenants/acme/tickets', 'not.a.token');
    expect(garbage.status).toBe(401);
    expect(garbage.headers.get('www-authenticate')).toMatch(/^Bearer realm="tickets", error="invalid_token"/);
    const none = await call('/tenants/acme/tickets');
    expect(none.status).toBe(401);
    // RFC 6750 §3.1: no token, no error code; but where to learn how to get one.
    expect(none.headers.get('www-authenticate')).toMatch(new RegExp(`^Bearer realm="tickets", resource_metadata="${metadataUrl('acme')}"`));
    expect((await call('/elsewhere')).status).toBe(404);
  });

  it('a write without tickets:write is 403 insufficient_scope, and nothing is written', async () => {
    const reader = await clientToken('acme', acme);
    const res = await post('/tenants/acme/tickets', reader, { title: 'should not exist' });
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="tickets", error="insufficient_scope", error_description="[^"]+", scope="tickets:write", resource_metadata="/);
    expect(await res.json()).toMatchObject({ error: 'insufficient_scope', scope: 'tickets:write' });
    const after = await (await call('/tenants/acme/tickets', reader)).json();
    expect(after.tickets.map((t: { title: string }) => t.title)).not.toContain('should not exist');
    // The client cannot get tickets:write either: the broker refuses to widen.
    await expect(clientToken('acme', acme, { scope: 'tickets:write' })).rejects.toMatchObject({ error: 'invalid_scope' });
  });

  it('RFC 9728: from the 401 to the metadata, which names the tenant issuer and the resource to ask it for, to the tickets', async () => {
    const resource = new URL(`${api.url}/tenants/acme/tickets`);
    const refusal = await oauth.protectedResourceRequest('x', 'GET', resource, undefined, undefined, insecure).catch((e: unknown) => e);
    const bearer = (refusal as oauth.WWWAuthenticateChallengeError).cause.find((c) => c.scheme === 'bearer')!;
    expect(bearer.parameters.resource_metadata).toBe(metadataUrl('acme'));

    const res = await fetch(bearer.parameters.resource_metadata!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const metadata = await res.json();
    expect(metadata).toEqual({
      resource: AUDIENCE,
      authorization_servers: [b.issuer('acme')],
      scopes_supported: ['tickets:read', 'tickets:write'],
      bearer_methods_supported: ['header'],
      resource_name: 'Tickets (acme)',
      dpop_signing_alg_values_supported: expect.arrayContaining(['ES256']),
      dpop_bound_access_tokens_required: false,
    });
    // The metadata is enough to get in: the issuer's own discovery, then a token for `resource`.
    const as = await authorizationServer(metadata.authorization_servers[0]);
    expect(as.issuer).toBe(b.issuer('acme'));
    const c: oauth.Client = { client_id: acme.client_id };
    const tokens = await oauth.processClientCredentialsResponse(as, c, await oauth.clientCredentialsGrantRequest(as, c,
      oauth.ClientSecretBasic(acme.client_secret), new URLSearchParams({ resource: metadata.resource, scope: 'tickets:read' }), insecure));
    expect((await oauth.protectedResourceRequest(tokens.access_token, 'GET', resource, undefined, undefined, insecure)).status).toBe(200);

    // globex's route names globex's issuer; unserved tenants have no metadata.
    expect((await (await fetch(metadataUrl('globex'))).json()).authorization_servers).toEqual([b.issuer('globex')]);
    expect((await fetch(metadataUrl('vendor'))).status).toBe(404);
    expect((await fetch(`${api.url}/.well-known/oauth-protected-resource`)).status).toBe(404);
  });

  it("an agent's exchanged token reads acme's tickets; with tickets:write it writes; it is useless at globex", async () => {
    const reader = await agentToken('tickets:read');
    expect(decodeJwt(reader)).toMatchObject({ tenant_id: 'acme', client_id: agent.client_id, aud: AUDIENCE, scope: 'tickets:read' });
    const res = await call('/tenants/acme/tickets', reader);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ tenant: 'acme', client_id: agent.client_id, tickets: SEED_TICKETS.acme });
    expect((await post('/tenants/acme/tickets', reader, { title: 'nope' })).status).toBe(403);
    expect((await call('/tenants/globex/tickets', reader)).status).toBe(401);

    const writer = await agentToken('tickets:read tickets:write');
    const created = await post('/tenants/acme/tickets', writer, { title: 'Toner low on the fourth floor' });
    expect(created.status).toBe(201);
    const ticket = await created.json();
    expect(ticket).toEqual({ id: 3, title: 'Toner low on the fourth floor', status: 'open', created_by: agent.client_id });
    expect(created.headers.get('location')).toBe('/tenants/acme/tickets/3');
    expect((await (await call('/tenants/acme/tickets', writer)).json()).tickets).toContainEqual(ticket);
    // globex's tickets are untouched, and the writer cannot write there.
    expect((await post('/tenants/globex/tickets', writer, { title: 'nope' })).status).toBe(401);
    const globexList = await (await call('/tenants/globex/tickets', await clientToken('globex', globex))).json();
    expect(globexList.tickets).toEqual(SEED_TICKETS.globex);

    // Bad bodies are refused after the token is checked, never before.
    expect((await post('/tenants/acme/tickets', writer, { title: '' })).status).toBe(400);
    expect((await post('/tenants/acme/tickets', writer, [1])).status).toBe(400);
    expect((await call('/tenants/acme/tickets', writer, { method: 'POST', body: 'title=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
    expect((await post('/tenants/acme/tickets', writer, { title: 'x'.repeat(20_000) })).status).toBe(413);
    expect((await call('/tenants/acme/tickets', undefined, { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })).status).toBe(401);
  });

  it("with the API's own URL as each tenant's resource, oauth4webapi's strict RFC 9728 discovery works end to end", async () => {
    // RFC 9728 §3.3: a client checks that the metadata's `resource` is the URL it asked about.
    // With TICKETS_AUDIENCE=<this API>/tenants/{tenant}/tickets, that holds for every tenant.
    const self = await listen();
    try {
      const template = `${self.url}/tenants/{tenant}/tickets`;
      self.server.on('request', createTicketsApp({ brokerUrl: b.url, audience: template }).callback());
      const resource = new URL(template.replace('{tenant}', 'acme'));
      const client = (await seedTenant(b, 'acme', { resource: resource.href, clientName: 'strict' })) as Client;

      const metadata = await oauth.processResourceDiscoveryResponse(resource, await oauth.resourceDiscoveryRequest(resource, insecure));
      expect(metadata).toMatchObject({ resource: resource.href, authorization_servers: [b.issuer('acme')] });
      const as = await authorizationServer(metadata.authorization_servers![0]!);
      const c: oauth.Client = { client_id: client.client_id };
      const dpop = oauth.DPoP(c, await oauth.generateKeyPair('ES256'));
      const tokens = await oauth.processClientCredentialsResponse(as, c, await oauth.clientCredentialsGrantRequest(as, c,
        oauth.ClientSecretBasic(client.client_secret), new URLSearchParams({ resource: metadata.resource, scope: 'tickets:read' }), { ...insecure, DPoP: dpop }));
      expect(tokens.token_type).toBe('dpop');
      const res = await oauth.protectedResourceRequest(tokens.access_token, 'GET', resource, undefined, undefined, { ...insecure, DPoP: dpop });
      expect(res.status).toBe(200);
      expect((await res.json()).tickets).toEqual(expect.arrayContaining(SEED_TICKETS.acme as unknown[]));
      // The tour-audience token is not for this deployment's resource.
      expect((await fetch(resource, { headers: { authorization: `Bearer ${await clientToken('acme', acme)}` } })).status).toBe(401);
    } finally {
      await close(self.server);
    }
  });

  describe('online checking (RFC 7662), as INTROSPECTION_CLIENT_ID/SECRET turn on', () => {
    let online: { server: Server; url: string };

    /** RFC 7009 at the tenant's /revoke, by the client the token was issued to. */
    async function revoke(tenant: string, client: Client, token: string): Promise<void> {
      const res = await fetch(`${b.issuer(tenant)}/revoke`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      });
      expect(res.status, await res.clone().text()).toBe(200);
    }

    beforeAll(async () => {
      // The API introspects as its own client of acme.
      const self = (await seedTenant(b, 'acme', { resource: AUDIENCE, clientName: 'tickets-api' })) as Client;
      online = await listen(createTicketsApp({
        brokerUrl: b.url,
        introspection: { clientId: self.client_id, clientSecret: self.client_secret },
      }).callback());
    });
    afterAll(() => close(online?.server));

    it("acme's token is refused after its revocation by the online API, while the offline one still takes it until it expires", async () => {
      const token = await clientToken('acme', acme);
      expect((await fetch(`${online.url}/tenants/acme/tickets`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      // Revocation never widens anything: the tenant check comes first, so B's route still says "another tenant".
      const atGlobex = await fetch(`${online.url}/tenants/globex/tickets`, { headers: { authorization: `Bearer ${token}` } });
      expect(atGlobex.status).toBe(401);
      expect((await atGlobex.json()).error_description).toBe('the access token belongs to another tenant');

      await revoke('acme', acme, token);
      const res = await fetch(`${online.url}/tenants/acme/tickets`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="tickets", error="invalid_token", error_description="the access token is no longer active", /);
      expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'the access token is no longer active' });
      // Offline checking sees a valid signature and an unexpired token: that is its trade-off.
      expect((await call('/tenants/acme/tickets', token)).status).toBe(200);
      // A fresh token of the same client is fine.
      expect((await fetch(`${online.url}/tenants/acme/tickets`, { headers: { authorization: `Bearer ${await clientToken('acme', acme)}` } })).status).toBe(200);
    });

    it("revoking the agent's credential at its home tenant makes the token exchanged from it inactive at acme", async () => {
      const c: oauth.Client = { client_id: agent.client_id };
      const home = await authorizationServer(b.issuer('vendor'));
      const cred = (await oauth.processClientCredentialsResponse(home, c,
        await oauth.clientCredentialsGrantRequest(home, c, oauth.ClientSecretBasic(agent.client_secret), new URLSearchParams(), insecure))).access_token;
      const as = await authorizationServer(b.issuer('acme'));
      const exchanged = (await oauth.processGenericTokenEndpointResponse(as, c, await oauth.genericTokenEndpointRequest(as, c,
        oauth.ClientSecretBasic(agent.client_secret), TE, new URLSearchParams({ subject_token: cred, subject_token_type: AT, resource: AUDIENCE, scope: 'tickets:read' }), insecure))).access_token;
      const read = () => fetch(`${online.url}/tenants/acme/tickets`, { headers: { authorization: `Bearer ${exchanged}` } });
      expect((await read()).status).toBe(200);

      await revoke('vendor', agent, cred);
      const res = await read();
      expect(res.status).toBe(401);
      expect((await res.json()).error_description).toBe('the access token is no longer active');
    });

    it("with one introspection client (acme's), another tenant's tokens cannot be checked: 503, failing closed", async () => {
      const res = await fetch(`${online.url}/tenants/globex/tickets`, { headers: { authorization: `Bearer ${await clientToken('globex', globex)}` } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect((await res.json()).error).toBe('temporarily_unavailable');
    });
  });

  describe('the demo process (`npm run demo` runs examples/tickets-api/server.mjs)', () => {
    function start(env: Record<string, string>): { child: ChildProcessWithoutNullStreams; output: () => string; exited: Promise<number | null> } {
      const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'pipe' });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      return { child, output: () => out, exited };
    }

    it('starts from the environment, prints its URL, serves acme and refuses acme\'s token at globex, stops on SIGTERM', async () => {
      const demo = start({ BROKER_URL: b.url, PORT: '0' });
      try {
        const url = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`demo did not start: ${demo.output()}`)), 20_000);
          demo.child.stdout.on('data', () => {
            const m = /tickets API listening on (http:\/\/\S+)/.exec(demo.output());
            if (m) (clearTimeout(timer), resolve(m[1]!));
          });
          void demo.exited.then((code) => (clearTimeout(timer), reject(new Error(`demo exited with ${code}: ${demo.output()}`))));
        });
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        await expect.poll(() => demo.output()).toContain(`audience  ${AUDIENCE}`);
        const token = await clientToken('acme', acme);
        const ok = await fetch(`${url}/tenants/acme/tickets`, { headers: { authorization: `Bearer ${token}` } });
        expect(ok.status).toBe(200);
        expect((await ok.json()).tickets).toEqual(SEED_TICKETS.acme);
        const refused = await fetch(`${url}/tenants/globex/tickets`, { headers: { authorization: `Bearer ${token}` } });
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
        await expect.poll(() => demo.output()).toContain('GET /tenants/globex/tickets 401 invalid_token (the access token belongs to another tenant)');
      } finally {
        demo.child.kill('SIGTERM');
      }
      expect(await demo.exited).toBe(0);
    });

    it('refuses invalid configuration with one line per problem', async () => {
      const demo = start({ BROKER_URL: 'ftp://x', PORT: 'eighty', TICKETS_TENANTS: 'acme,Not_A_Tenant', INTROSPECTION_CLIENT_ID: 'cl_x' });
      expect(await demo.exited).toBe(1);
      expect(demo.output().trim().split('\n')).toEqual([
        'tickets-api: BROKER_URL must be an http(s) URL, got ftp://x',
        'tickets-api: PORT must be an integer from 0 to 65535, got eighty',
        'tickets-api: TICKETS_TENANTS: Not_A_Tenant is not a tenant id',
        'tickets-api: INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET go together',
      ]);
    });
  });
});
