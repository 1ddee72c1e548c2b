import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { adminRouter, ADMIN_EVENT_TYPES } from '../../src/admin/routes.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

type Event = {
  seq: number; time: string; tenant_id: string; type: string; outcome: string; reason: string | null; actor: string | null;
  client_id: string | null; subject: string | null; jti: string | null; scopes: string[]; audience: string | null;
  request_id: string | null; client_ip: string | null; detail: Record<string, any> | null; prev_hash: string; hash: string;
};

/**
 * The audit trail over real HTTP: every decision at the token and revocation endpoints and every
 * admin change is exactly one event in its tenant's hash chain, committed before the answer
 * leaves; nothing secret is in any event; the chain verifies, and edits, deletions and a cut tail
 * made directly in the database are found by `audit verify`.
 */
describe.each(DATABASES)('audit trail (%s)', (kind) => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let agent: { client_id: string; client_secret: string };
  let delegation: string;
  /** Every secret and token this suite handles: none may appear in any event. */
  const secrets = new Set<string>();

  const trail = async (tenant: string): Promise<Event[]> => (await b.admin('GET', `/tenants/${tenant}/audit?limit=1000`)).body.events;
  const lastSeq = async (tenant: string) => (await trail(tenant)).at(-1)?.seq ?? 0;
  /** The events `fn` added to `tenant`'s trail (all of them are committed when its answer arrives). */
  async function added(tenant: string, fn: () => Promise<unknown>): Promise<Event[]> {
    const before = await lastSeq(tenant);
    await fn();
    return (await b.admin('GET', `/tenants/${tenant}/audit?after=${before}&limit=1000`)).body.events;
  }
  const verify = async (tenant: string) => (await b.admin('GET', `/tenants/${tenant}/audit/verify`)).body;
  const basic = (c: { client_id: string; client_secret?: string }): [string, string] => [c.client_id, c.client_secret!];
  const keep = <T extends { access_token?: string }>(body: T) => {
    if (body.access_token) secrets.add(body.access_token);
    return body;
  };

  beforeAll(async () => {
    b = await startTestBroker(kind);
    acme = await seedTenant(b, 'acme');
    await seedTenant(b, 'globex');
    await b.admin('POST', '/tenants', { id: 'vendor' });
    agent = (await b.admin('POST', '/tenants/vendor/agents', { name: 'triage-bot' })).body;
    delegation = (await b.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [acme.resource] })).body.id;
    for (const s of [acme.client_secret!, agent.client_secret, b.adminCredentials().client_secret, await b.adminToken()]) secrets.add(s);
  });
  afterAll(() => b?.close());

  it('client credentials (oauth4webapi): one token.issued event carrying the token\'s jti, scopes and audience', async () => {
    const issuer = new URL(b.issuer('acme'));
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    const c: oauth.Client = { client_id: acme.client_id };
    let token = '';
    const events = await added('acme', async () => {
      const res = await oauth.clientCredentialsGrantRequest(as, c, oauth.ClientSecretBasic(acme.client_secret!), new URLSearchParams({ resource: acme.resource, scope: 'tickets:read' }), {
        ...insecure,
        headers: new Headers({ 'x-request-id': 'audit-req-1' }),
      });
      token = keep(await oauth.processClientCredentialsResponse(as, c, res)).access_token;
    });
    const claims = decodeJwt(token);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      tenant_id: 'acme', type: 'token.issued', outcome: 'success', reason: null, actor: acme.client_id, client_id: acme.client_id,
      subject: acme.client_id, jti: claims.jti, scopes: ['tickets:read'], audience: acme.resource, request_id: 'audit-req-1',
      detail: { grant_type: 'client_credentials', dpop: false },
    });
    expect(events[0]!.client_ip).toMatch(/127\.0\.0\.1/);
    // The other tenants' trails got nothing.
    expect((await trail('globex')).some((e) => e.type.startsWith('token.'))).toBe(false);
  });

  it('every refusal is exactly one token.refused event with its error code, the claimed client when it did not authenticate', async () => {
    const cases: Array<[string, () => Promise<{ status: number; body: any }>, Partial<Event>]> = [
      ['scope outside the client', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope: 'tickets:write' }, { basic: basic(acme) }), { reason: 'invalid_scope', actor: acme.client_id, scopes: ['tickets:write'] }],
      ['resource outside the client', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials', resource: 'https://elsewhere.test/' }, { basic: basic(acme) }), { reason: 'invalid_target', audience: 'https://elsewhere.test/' }],
      ['wrong secret', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, 'not-the-secret'] }), { reason: 'invalid_client', actor: acme.client_id }],
      ['no credentials', () => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }), { reason: 'invalid_client', actor: null }],
      ['unsupported grant', () => tokenRequest(b, 'acme', { grant_type: 'password' }, { basic: basic(acme) }), { reason: 'unsupported_grant_type' }],
      ['globex client at acme', () => tokenRequest(b, 'globex', { grant_type: 'client_credentials' }, { basic: basic(acme) }), {}],
    ];
    for (const [label, send, expected] of cases) {
      const tenant = label === 'globex client at acme' ? 'globex' : 'acme';
      let res: { status: number; body: any } | undefined;
      const events = await added(tenant, async () => {
        res = await send();
      });
      expect(res!.status, label).toBeGreaterThanOrEqual(400);
      expect(events, label).toHaveLength(1);
      expect(events[0], label).toMatchObject({ tenant_id: tenant, type: 'token.refused', outcome: 'refused', reason: res!.body.error, jti: null, ...expected });
      expect(events[0]!.detail, label).toMatchObject({ status: res!.status });
    }
    // The wrong secret is the client's own id with a failed authentication: said so, and the presented secret is nowhere.
    const wrong = (await trail('acme')).find((e) => e.reason === 'invalid_client' && e.actor === acme.client_id)!;
    expect(wrong.detail).toMatchObject({ client_authenticated: false });
    expect(JSON.stringify(await trail('acme'))).not.toContain('not-the-secret');
  });

  it('token exchange: one token.exchanged event (subject, act, delegation, the traded token\'s jti); a refused exchange one token.refused', async () => {
    const cred = keep((await tokenRequest(b, 'vendor', { grant_type: 'client_credentials' }, { basic: basic(agent) })).body).access_token!;
    let token = '';
    const events = await added('acme', async () => {
      const r = await tokenRequest(b, 'acme', { grant_type: TOKEN_EXCHANGE, subject_token: cred, subject_token_type: ACCESS_TOKEN, resource: acme.resource, scope: 'tickets:read' }, { basic: basic(agent) });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      token = keep(r.body).access_token;
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'token.exchanged', outcome: 'success', client_id: agent.client_id, subject: agent.client_id, jti: decodeJwt(token).jti,
      scopes: ['tickets:read'], audience: acme.resource,
      detail: { grant_type: TOKEN_EXCHANGE, delegation, subject_jti: decodeJwt(cred).jti, subject_client_id: agent.client_id, dpop: false },
    });
    const refused = await added('acme', () => tokenRequest(b, 'acme', { grant_type: TOKEN_EXCHANGE, subject_token: cred, subject_token_type: ACCESS_TOKEN, scope: 'tickets:write' }, { basic: basic(agent) }));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ type: 'token.refused', reason: 'invalid_scope', actor: agent.client_id, scopes: ['tickets:write'], detail: { grant_type: TOKEN_EXCHANGE } });
    // The subject token itself is never recorded.
    expect(JSON.stringify(refused)).not.toContain(cred);
  });

  it('revocation (RFC 7009): one token.revoked event; an unknown token one token.revoke_ignored; a refused caller one token.revoke_refused', async () => {
    const token = keep((await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: basic(acme) })).body).access_token!;
    const revoke = (body: Record<string, string>, auth: [string, string]) => fetch(`${b.url}/t/acme/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(auth.join(':')).toString('base64')}` },
      body: new URLSearchParams(body),
    });
    const revoked = await added('acme', async () => expect((await revoke({ token }, basic(acme))).status).toBe(200));
    expect(revoked.map((e) => [e.type, e.outcome, e.jti, e.actor])).toEqual([['token.revoked', 'success', decodeJwt(token).jti, acme.client_id]]);
    const ignored = await added('acme', async () => expect((await revoke({ token: 'not-a-token' }, basic(acme))).status).toBe(200));
    expect(ignored.map((e) => [e.type, e.outcome, e.jti])).toEqual([['token.revoke_ignored', 'success', null]]);
    const refused = await added('acme', async () => expect((await revoke({ token }, [acme.client_id, 'wrong'])).status).toBe(401));
    expect(refused.map((e) => [e.type, e.outcome, e.reason])).toEqual([['token.revoke_refused', 'refused', 'invalid_client']]);
  });

  it('admin changes: one event each in the changed tenant, with the admin as actor; refused changes too; reads write nothing', async () => {
    const admin = b.adminCredentials().client_id;
    let created: { client_id: string; client_secret: string } | undefined;
    const events = await added('acme', async () => {
      created = (await b.admin('POST', '/tenants/acme/clients', { name: 'reporting', scopes: ['tickets:read'], resources: [acme.resource] })).body;
      secrets.add(created!.client_secret);
      const rotated = (await b.admin('POST', `/tenants/acme/clients/${created!.client_id}/rotate-secret`)).body;
      secrets.add(rotated.client_secret);
      await b.admin('POST', '/tenants/acme/keys/rotate', {});
      await b.admin('POST', `/tenants/acme/delegations/${delegation}/revoke`);
      await b.admin('POST', '/tenants/acme/clients', { name: '', scopes: [] }, { allowError: true });
      await b.admin('GET', '/tenants/acme/clients');
      await b.admin('GET', '/tenants/acme/keys');
    });
    expect(events.map((e) => [e.type, e.outcome, e.reason, e.actor])).toEqual([
      ['client.created', 'success', null, admin],
      ['client.secret_rotated', 'success', null, admin],
      ['key.rotated', 'success', null, admin],
      ['delegation.revoked', 'success', null, admin],
      ['client.created', 'refused', 'invalid_request', admin],
    ]);
    expect(events[0]).toMatchObject({ client_id: created!.client_id, scopes: ['tickets:read'], detail: { route: 'POST /admin/tenants/:tenant/clients', admin_tenant: 'system', name: 'reporting' } });
    expect(events[3]!.detail).toMatchObject({ id: delegation });
    // A new tenant's trail starts with its creation.
    await b.admin('POST', '/tenants', { id: 'newco' });
    expect((await trail('newco')).map((e) => [e.seq, e.type, e.prev_hash])).toEqual([[1, 'tenant.created', '0'.repeat(64)]]);
  });

  it('a policy denial names the deciding policy in its event, never in the response; setting the policy is an event too', async () => {
    const t = await seedTenant(b, 'policed', { clientScopes: ['tickets:read', 'tickets:write'] });
    const set = await added('policed', () => b.admin('PUT', '/tenants/policed/policy', {
      policy: '@id("no-write")\nforbid(principal, action, resource) when { context.scopes.contains("tickets:write") };\n@id("all")\npermit(principal, action, resource);',
    }));
    expect(set.map((e) => [e.type, e.outcome, e.actor])).toEqual([['policy.set', 'success', b.adminCredentials().client_id]]);
    let res: { status: number; body: any } | undefined;
    const denied = await added('policed', async () => {
      res = await tokenRequest(b, 'policed', { grant_type: 'client_credentials', scope: 'tickets:write' }, { basic: basic(t) });
    });
    expect(res!.status).toBe(400);
    expect(JSON.stringify(res!.body)).not.toContain('no-write');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ type: 'token.refused', reason: res!.body.error, scopes: ['tickets:write'], detail: { policy: { effect: 'deny', policy_ids: ['no-write'] } } });
    const allowed = await added('policed', async () => expect((await tokenRequest(b, 'policed', { grant_type: 'client_credentials', scope: 'tickets:read' }, { basic: basic(t) })).status).toBe(200));
    expect(allowed[0]).toMatchObject({ type: 'token.issued', detail: { policy: { effect: 'allow', policy_ids: ['all'] } } });
  });

  it('every admin route that changes something has its own event type', () => {
    const changing = adminRouter(b.broker.services, { maxBodyBytes: 1024 }).stack
      .filter((l) => l.methods.some((m) => !['GET', 'HEAD'].includes(m)))
      .flatMap((l) => l.methods.filter((m) => !['GET', 'HEAD'].includes(m)).map((m) => `${m} ${String(l.path)}`));
    expect(changing.length).toBeGreaterThanOrEqual(15);
    for (const route of changing) expect(ADMIN_EVENT_TYPES[route], route).toMatch(/^[a-z_]+\.[a-z_]+$/);
  });

  it('nothing secret in any event of any tenant: no client secret, no token, no key material', async () => {
    const all = [];
    for (const t of ['system', 'acme', 'globex', 'vendor', 'newco', 'policed']) all.push(...(await trail(t)));
    expect(all.length).toBeGreaterThan(20);
    const text = JSON.stringify(all);
    expect(secrets.size).toBeGreaterThan(5);
    for (const s of secrets) expect(text.includes(s), 'a secret or token is in the audit trail').toBe(false);
    // No JWT of any kind, and no private JWK member.
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
    expect(text).not.toMatch(/"d":|privateJwk|client_secret/);
  });

  it('each tenant\'s chain verifies: seq 1..n without gaps, every event linked to the one before', async () => {
    for (const t of ['system', 'acme', 'globex', 'vendor']) {
      const events = await trail(t);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      for (let i = 1; i < events.length; i++) expect(events[i]!.prev_hash).toBe(events[i - 1]!.hash);
      const report = await verify(t);
      expect(report, t).toEqual({ tenant_id: t, ok: true, events: events.length, head: { seq: events.length, hash: events.at(-1)!.hash } });
    }
  });

  it('the database refuses to change or remove audit rows (append-only)', async () => {
    const sql = b.broker.services.db.driver;
    await expect(sql.query(`UPDATE "AuditEvent" SET "outcome" = 'success' WHERE "tenantId" = 'acme'`)).rejects.toThrow(/append-only/);
    await expect(sql.query(`DELETE FROM "AuditEvent" WHERE "tenantId" = 'acme'`)).rejects.toThrow(/append-only/);
    await expect(sql.query(`TRUNCATE "AuditEvent"`)).rejects.toThrow(/append-only/);
    expect((await verify('acme')).ok).toBe(true);
  });

  describe('tampering made directly in the database is found by audit verify', () => {
    /** Runs SQL with the append-only trigger off, as someone with the database owner's rights could. */
    async function tamper(sql: string) {
      await b.broker.services.db.driver.exec(`ALTER TABLE "AuditEvent" DISABLE TRIGGER USER; ${sql}; ALTER TABLE "AuditEvent" ENABLE TRIGGER USER;`);
    }
    /** A tenant with a few events: creation, a resource, a client, tokens issued and refused. */
    async function busyTenant(id: string) {
      const t = await seedTenant(b, id);
      for (let i = 0; i < 3; i++) expect((await tokenRequest(b, id, { grant_type: 'client_credentials' }, { basic: basic(t) })).status).toBe(200);
      await tokenRequest(b, id, { grant_type: 'client_credentials', scope: 'tickets:write' }, { basic: basic(t) });
      const events = await trail(id);
      expect(events.length).toBeGreaterThanOrEqual(7);
      expect((await verify(id)).ok).toBe(true);
      return events;
    }

    it('an edited field (a refusal turned into a success) is reported at that event', async () => {
      const events = await busyTenant('tamper-edit');
      const target = events.find((e) => e.outcome === 'refused')!;
      await tamper(`UPDATE "AuditEvent" SET "outcome" = 'success', "reason" = NULL WHERE "tenantId" = 'tamper-edit' AND "seq" = ${target.seq}`);
      expect(await verify('tamper-edit')).toMatchObject({ ok: false, events: target.seq - 1, broken: { seq: target.seq, problem: expect.stringMatching(/altered/) } });
    });

    it('an edit that also recomputes that event\'s hash breaks the next link', async () => {
      const events = await busyTenant('tamper-rehash');
      const target = events[2]!;
      const { chainHash } = await import('../../src/audit/event.js');
      const forged = { tenantId: 'tamper-rehash', seq: target.seq, time: new Date(target.time), type: target.type, outcome: target.outcome, reason: target.reason, actor: 'someone-else', clientId: target.client_id, subject: target.subject, jti: target.jti, scopes: target.scopes, audience: target.audience, requestId: target.request_id, clientIp: target.client_ip, detail: target.detail };
      const hash = chainHash(target.prev_hash, forged);
      await tamper(`UPDATE "AuditEvent" SET "actor" = 'someone-else', "hash" = '${hash}' WHERE "tenantId" = 'tamper-rehash' AND "seq" = ${target.seq}`);
      expect(await verify('tamper-rehash')).toMatchObject({ ok: false, broken: { seq: target.seq + 1, problem: expect.stringMatching(/does not link/) } });
    });

    it('a deleted event is reported as missing', async () => {
      const events = await busyTenant('tamper-delete');
      const target = events[3]!;
      await tamper(`DELETE FROM "AuditEvent" WHERE "tenantId" = 'tamper-delete' AND "seq" = ${target.seq}`);
      expect(await verify('tamper-delete')).toMatchObject({ ok: false, events: target.seq - 1, broken: { seq: target.seq, problem: expect.stringMatching(/missing/) } });
    });

    it('a row written outside the chain\'s numbering is reported', async () => {
      await busyTenant('tamper-stray');
      await tamper(`INSERT INTO "AuditEvent" ("tenantId", "seq", "time", "type", "outcome", "scopes", "prevHash", "hash")
        VALUES ('tamper-stray', 0, now(), 'token.issued', 'success', '{}', '${'0'.repeat(64)}', '${'0'.repeat(64)}')`);
      expect(await verify('tamper-stray')).toMatchObject({ ok: false, broken: { seq: 0, problem: expect.stringMatching(/outside the chain/) } });
    });

    it('events cut from the end are reported against the chain\'s head', async () => {
      const events = await busyTenant('tamper-tail');
      const n = events.length;
      await tamper(`DELETE FROM "AuditEvent" WHERE "tenantId" = 'tamper-tail' AND "seq" >= ${n - 1}`);
      expect(await verify('tamper-tail')).toMatchObject({ ok: false, events: n - 2, broken: { seq: n - 1, problem: expect.stringMatching(/removed/) } });
      // The other tenants' chains are untouched.
      expect((await verify('acme')).ok).toBe(true);
    });
  });

  it('a tenant admin reads its own trail only: another tenant\'s is 404 as for an unknown tenant', async () => {
    const admin = (await b.admin('POST', '/tenants/globex/clients', { name: 'globex-admin', scopes: ['admin'], resources: ['urn:bulkhead:admin'] })).body;
    const token = keep((await tokenRequest(b, 'globex', { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' }, { basic: basic(admin) })).body).access_token!;
    const get = (route: string) => fetch(`${b.url}/admin${route}`, { headers: { authorization: `Bearer ${token}` } });
    const own = await get('/tenants/globex/audit?limit=5');
    expect(own.status).toBe(200);
    expect(((await own.json()) as { events: Event[] }).events.every((e) => e.tenant_id === 'globex')).toBe(true);
    for (const route of ['/tenants/acme/audit', '/tenants/acme/audit/verify']) {
      const r = await get(route);
      expect(r.status, route).toBe(404);
      expect(await r.json()).toEqual({ error: 'not_found', error_description: 'tenant acme not found' });
    }
    // Bad query parameters are a 400, not a 500.
    for (const q of ['limit=0', 'limit=1001', 'after=-1', 'limit=abc', 'nope=1']) expect((await get(`/tenants/globex/audit?${q}`)).status, q).toBe(400);
  });

  it('when the audit trail cannot be written, no token leaves: 503 instead; refusals are still refused; it recovers', async () => {
    const sql = b.broker.services.db.driver;
    // Make every insert into the trail fail, as a full disk or a broken table would.
    await sql.exec(`CREATE FUNCTION audit_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
      CREATE TRIGGER audit_test_fail BEFORE INSERT ON "AuditEvent" FOR EACH ROW EXECUTE FUNCTION audit_test_fail();`);
    try {
      const r = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: basic(acme) });
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' });
      expect(r.headers.get('retry-after')).toBe('5');
      const refused = await tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope: 'tickets:write' }, { basic: basic(acme) });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_scope');
      // An admin change that cannot be recorded says so.
      const change = await b.admin('POST', '/tenants/acme/resources', { uri: 'https://unaudited.test/', scopes: ['x'] }, { allowError: true });
      expect(change.status).toBe(503);
    } finally {
      await sql.exec(`DROP TRIGGER audit_test_fail ON "AuditEvent"; DROP FUNCTION audit_test_fail();`);
    }
    const ok = await tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: basic(acme) });
    expect(ok.status).toBe(200);
    expect((await verify('acme')).ok).toBe(true);
  });
});
