import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const AT = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * Two broker replicas on one PostgreSQL database and one Redis, as in production: a change made
 * through one is in force on the other at once (the change bus), and a one-time id used at one
 * cannot be replayed at the other (the shared replay store).
 */
describe('two replicas sharing PostgreSQL and Redis', () => {
  let r1: TestBroker;
  let r2: TestBroker;
  let agent: { client_id: string; client_secret: string };
  let delegation: string;
  const api = 'https://api.acme.test/';

  beforeAll(async () => {
    r1 = await startTestBroker('postgres', { REDIS_URL });
    r2 = await startTestBroker('pglite', { REDIS_URL, DATABASE_URL: r1.config.databaseUrl!, KEYS_DIR: r1.keysDir, PUBLIC_URL: r1.url });
    await r1.admin('POST', '/tenants', { id: 'vendor' });
    await r1.admin('POST', '/tenants', { id: 'acme' });
    await r1.admin('POST', '/tenants/acme/resources', { uri: api, scopes: ['tickets:read'] });
    agent = (await r1.admin('POST', '/tenants/vendor/agents', { name: 'bot' })).body;
    delegation = (await r1.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [api] })).body.id;
  });
  afterAll(async () => {
    await r2?.close();
    await r1?.close();
  });

  // r2 serves the same PUBLIC_URL as r1 (one issuer, two processes): requests go to r2's port.
  const at = (r: TestBroker) => (r === r1 ? r1 : { ...r2, url: `http://127.0.0.1:${r2.config.port}` });

  async function credential(r: TestBroker): Promise<string> {
    const res = await tokenRequest(at(r), 'vendor', { grant_type: 'client_credentials' }, { basic: [agent.client_id, agent.client_secret] });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.access_token;
  }

  function exchange(r: TestBroker, subject: string, headers: Record<string, string> = {}) {
    return tokenRequest(at(r), 'acme', { grant_type: TE, subject_token: subject, subject_token_type: AT, resource: api }, { basic: [agent.client_id, agent.client_secret], headers });
  }

  it('both replicas issue for the same tenant, with the same keys', async () => {
    const cred = await credential(r1);
    expect((await exchange(r2, cred)).status).toBe(200);
    expect((await exchange(r1, await credential(r2))).status).toBe(200);
  });

  it('a DPoP proof used at one replica is refused at the other', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const proof = await new SignJWT({ htm: 'POST', htu: `${r1.issuer('acme')}/token`, jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .setIssuedAt()
      .sign(privateKey);
    const cred = await credential(r1);
    const first = await exchange(r1, cred, { dpop: proof });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.token_type).toBe('DPoP');
    expect(JSON.parse(Buffer.from(first.body.access_token.split('.')[1], 'base64url').toString()).cnf.jkt).toBe(await calculateJwkThumbprint(jwk));
    const replayed = await exchange(r2, cred, { dpop: proof });
    expect(replayed.status).toBe(400);
    expect(replayed.body.error).toBe('invalid_dpop_proof');
  });

  it('a delegation revoked through one replica stops the very next exchange at the other', async () => {
    const cred = await credential(r1);
    // Warm r2's caches (client row, delegation) with a successful exchange first.
    expect((await exchange(r2, cred)).status).toBe(200);
    expect((await exchange(r2, cred)).status).toBe(200);
    await r1.admin('POST', `/tenants/acme/delegations/${delegation}/revoke`);
    // Published before the admin call returned; give the subscriber a moment to receive it.
    await new Promise((r) => setTimeout(r, 100));
    const res = await exchange(r2, cred);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  it('both replicas append to one audit chain per tenant: concurrent issuance leaves seq 1..n linked, one event per token', async () => {
    const before = (await r1.admin('GET', '/tenants/vendor/audit/verify')).body;
    expect(before.ok).toBe(true);
    const sent = await Promise.all(Array.from({ length: 60 }, (_, i) => tokenRequest(at(i % 2 ? r1 : r2), 'vendor', { grant_type: 'client_credentials' }, { basic: [agent.client_id, agent.client_secret] })));
    expect(sent.map((r) => r.status)).toEqual(sent.map(() => 200));
    const after = (await r2.admin('GET', '/tenants/vendor/audit/verify')).body;
    expect(after).toMatchObject({ ok: true, events: before.events + 60, head: { seq: before.head.seq + 60 } });
    const events = (await r1.admin('GET', `/tenants/vendor/audit?after=${before.head.seq}&limit=1000`)).body.events as Array<{ jti: string; type: string }>;
    const jtis = sent.map((r) => JSON.parse(Buffer.from(r.body.access_token.split('.')[1], 'base64url').toString()).jti).sort();
    expect(events.filter((e) => e.type === 'token.issued').map((e) => e.jti).sort()).toEqual(jtis);
  });

  it('the change bus ignores malformed messages and its own echoes', async () => {
    const pub = new Redis(REDIS_URL);
    try {
      await pub.publish('bulkhead:changes:v1', 'not json');
      await pub.publish('bulkhead:changes:v1', JSON.stringify({ k: 'client', t: 42 }));
    } finally {
      await pub.quit();
    }
    expect((await fetch(`http://127.0.0.1:${r2.config.port}/healthz`)).status).toBe(200);
    expect((await fetch(`${r1.url}/healthz`)).status).toBe(200);
  });

  describe('revocation', () => {
    let rs: { client_id: string; client_secret: string };
    let installed: string;
    const basic = (c: { client_id: string; client_secret: string }) => `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}`;
    async function form(r: TestBroker, tenant: string, endpoint: 'introspect' | 'revoke', token: string, as: { client_id: string; client_secret: string }) {
      const res = await fetch(`${at(r).url}/t/${tenant}/${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(as) },
        body: new URLSearchParams({ token }).toString(),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { active?: boolean };
    }
    const introspect = (r: TestBroker, token: string) => form(r, 'acme', 'introspect', token, rs);
    /** Polls `r`'s introspection until the token is inactive; how long that took, or undefined past `ms`. */
    async function inactiveWithin(r: TestBroker, token: string, ms: number): Promise<number | undefined> {
      const start = Date.now();
      while (Date.now() - start <= ms) {
        if ((await introspect(r, token)).active === false) return Date.now() - start;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return undefined;
    }
    async function agentToken(r: TestBroker): Promise<string> {
      const res = await exchange(r, await credential(r));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.access_token;
    }

    beforeAll(async () => {
      // The delegation was revoked above: install the agent again, and give acme a resource server.
      installed = (await r1.admin('POST', '/tenants/acme/delegations', { client_id: agent.client_id, scopes: ['tickets:read'], resources: [api] })).body.id;
      rs = (await r1.admin('POST', '/tenants/acme/clients', { name: 'tickets-rs', scopes: ['tickets:read'], resources: [api] })).body;
    });

    it("a token revoked through r1's /t/T/revoke is inactive at r2's introspection at once, and refused there as a subject token", async () => {
      const token = await agentToken(r1);
      // Warm r2: the token verified and active there, and accepted as a subject token.
      expect(await introspect(r2, token)).toMatchObject({ active: true, client_id: agent.client_id, tenant_id: 'acme' });
      expect((await exchange(r2, token)).status).toBe(200);

      expect(await form(r1, 'acme', 'revoke', token, agent)).toEqual({});
      // Published before r1 answered; r2 reloads acme's list when the message arrives.
      expect(await inactiveWithin(r2, token, 150)).toBeDefined();
      expect(await introspect(r1, token)).toEqual({ active: false });
      const refused = await exchange(r2, token);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ error: 'invalid_request', error_description: 'subject_token: has been revoked' });
    });

    it("the cascade and an admin revoke-all through r1 are in force at r2 as well", async () => {
      // Revoking the agent credential at home (vendor) through r1: what was exchanged from it is inactive at r2.
      const credential1 = await credential(r1);
      const child = (await exchange(r1, credential1)).body.access_token as string;
      expect((await introspect(r2, child)).active).toBe(true);
      expect(await form(r1, 'vendor', 'revoke', credential1, agent)).toEqual({});
      expect(await inactiveWithin(r2, child, 150)).toBeDefined();

      // Revoke-all for the delegation through r1's admin API: the agent's tokens in acme, at r2.
      const token = await agentToken(r2);
      expect((await introspect(r2, token)).active).toBe(true);
      const r = await r1.admin('POST', `/tenants/acme/delegations/${installed}/revoke-tokens`);
      expect(r.body).toMatchObject({ delegation: installed, client_id: agent.client_id });
      expect(await inactiveWithin(r2, token, 150)).toBeDefined();
      expect((await exchange(r2, token)).body.error_description).toBe('subject_token: has been revoked');
    });
  });
});

describe('Redis unreachable', () => {
  let b: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker('pglite', { REDIS_URL: 'redis://127.0.0.1:1' });
  });
  afterAll(() => b?.close());

  it('a request that needs the shared replay store gets a retryable 503, never a 500; others are served', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const proof = await new SignJWT({ htm: 'POST', htu: `${b.issuer('system')}/token`, jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) })
      .setIssuedAt()
      .sign(privateKey);
    const c = b.adminCredentials();
    const form = { grant_type: 'client_credentials', resource: 'urn:bulkhead:admin', scope: 'admin' };
    const res = await tokenRequest(b, 'system', form, { basic: [c.client_id, c.client_secret], headers: { dpop: proof } });
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body.error).toBe('temporarily_unavailable');
    expect((await tokenRequest(b, 'system', form, { basic: [c.client_id, c.client_secret] })).status).toBe(200);
  });
});
