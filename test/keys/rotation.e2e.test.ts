import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { DATABASES } from '../support/databases.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { KeyDecryptionFailed } from '../../src/keys/kek.js';

describe.each(DATABASES)('signing key rotation and revocation (%s)', (kind) => {
  let b: TestBroker;
  let svc: Awaited<ReturnType<typeof seedTenant>>;

  const jwksKids = async (tenant = 'rot') =>
    ((await (await fetch(`${b.issuer(tenant)}/jwks`)).json()) as { keys: { kid: string; d?: string }[] }).keys.map((k) => k.kid).sort();
  const keys = async (tenant = 'rot') => (await b.admin('GET', `/tenants/${tenant}/keys`)).body.keys as Array<{ kid: string; status: string; alg: string }>;
  const kidsWith = async (status: string) => (await keys()).filter((k) => k.status === status).map((k) => k.kid);
  const mint = async () => {
    const r = await tokenRequest(b, 'rot', { grant_type: 'client_credentials' }, { basic: [svc.client_id, svc.client_secret!] });
    expect(r.status).toBe(200);
    return r.body.access_token as string;
  };
  // A fresh verifier each time, as a resource server that has just refreshed its JWKS.
  const verify = (token: string) =>
    jwtVerify(token, createRemoteJWKSet(new URL(`${b.issuer('rot')}/jwks`)), { issuer: b.issuer('rot'), audience: svc.resource, typ: 'at+jwt' });

  beforeAll(async () => {
    b = await startTestBroker(kind);
    svc = await seedTenant(b, 'rot');
    await seedTenant(b, 'other');
  });
  afterAll(() => b?.close());

  it('walks pending → active → retired → revoked with the JWKS right at each step', async () => {
    // A new tenant: one active key and one pending key, both published, no private members.
    const [active0] = await kidsWith('active');
    const [pending0] = await kidsWith('pending');
    expect(await jwksKids()).toEqual([active0, pending0].sort());
    const raw = await (await fetch(`${b.issuer('rot')}/jwks`)).text();
    expect(raw).not.toMatch(/"d"|"p"|"q"|"dp"|"dq"|"qi"/);

    const t1 = await mint();
    expect(decodeProtectedHeader(t1).kid).toBe(active0);

    // Rotation promotes the key that was already published: verifiers knew it before it signed.
    const rotated = (await b.admin('POST', '/tenants/rot/keys/rotate', {})).body;
    expect(rotated.active.kid).toBe(pending0);
    const [pending1] = await kidsWith('pending');
    expect(await kidsWith('retired')).toEqual([active0]);
    expect(await jwksKids()).toEqual([active0, pending0, pending1].sort());

    const t2 = await mint();
    expect(decodeProtectedHeader(t2).kid).toBe(pending0);
    // The retired key's token still verifies until it expires.
    await expect(verify(t1)).resolves.toBeTruthy();
    await expect(verify(t2)).resolves.toBeTruthy();

    // Revoking the retired key removes it at once; its tokens stop verifying.
    await b.admin('POST', `/tenants/rot/keys/${active0}/revoke`);
    expect(await jwksKids()).toEqual([pending0, pending1].sort());
    await expect(verify(t1)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });

    // Emergency: revoking the active key. The pending key signs from now on; issuing never stops.
    await b.admin('POST', `/tenants/rot/keys/${pending0}/revoke`);
    expect(await kidsWith('active')).toEqual([pending1]);
    const [pending2] = await kidsWith('pending');
    expect(await jwksKids()).toEqual([pending1, pending2].sort());
    await expect(verify(t2)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    const t3 = await mint();
    expect(decodeProtectedHeader(t3).kid).toBe(pending1);
    await expect(verify(t3)).resolves.toBeTruthy();
  });

  it('drops a retired key from the JWKS once every token it signed has expired', async () => {
    await b.admin('POST', '/tenants/rot/keys/rotate', {});
    const [retired] = await kidsWith('retired');
    expect(await jwksKids()).toContain(retired);
    const row = await b.broker.services.db.prisma.signingKey.findFirstOrThrow({ where: { tenantId: 'rot', kid: retired } });
    // Its horizon is the tenant's token cap plus a grace period after retirement.
    expect(+row.publishUntil! - +row.retiredAt!).toBe((300 + 60) * 1000);
    await b.broker.services.db.prisma.signingKey.update({
      where: { tenantId_kid: { tenantId: 'rot', kid: retired! } },
      data: { publishUntil: new Date(Date.now() - 1000) },
    });
    b.broker.services.changes.tenantChanged('rot');
    expect(await jwksKids()).not.toContain(retired);
  });

  it.each(['EdDSA', 'RS256', 'PS256', 'ES256'])('rotates to %s and signs with it', async (alg) => {
    const r = (await b.admin('POST', '/tenants/rot/keys/rotate', { alg })).body;
    expect(r.active.alg).toBe(alg);
    const token = await mint();
    expect(decodeProtectedHeader(token)).toMatchObject({ alg, kid: r.active.kid, typ: 'at+jwt' });
    await expect(verify(token)).resolves.toBeTruthy();
    // Nothing of another algorithm is left pending (published forever, never to sign).
    expect((await keys()).filter((k) => k.status === 'pending').map((k) => k.alg)).toEqual([alg]);
  });

  it('refuses bad key operations clearly and changes nothing', async () => {
    const before = await keys();
    expect((await b.admin('POST', '/tenants/rot/keys/nope/revoke', undefined, { allowError: true })).status).toBe(404);
    expect((await b.admin('POST', '/tenants/rot/keys/rotate', { alg: 'HS256' }, { allowError: true })).body.error).toBe('invalid_request');
    expect((await b.admin('POST', '/tenants/rot/keys/rotate', { alg: 'none' }, { allowError: true })).status).toBe(400);
    const [revoked] = before.filter((k) => k.status === 'revoked').map((k) => k.kid);
    expect((await b.admin('POST', `/tenants/rot/keys/${revoked}/revoke`, undefined, { allowError: true })).status).toBe(409);
    // Another tenant's kid is unknown here.
    const [otherKid] = (await keys('other')).map((k) => k.kid);
    expect((await b.admin('POST', `/tenants/rot/keys/${otherKid}/revoke`, undefined, { allowError: true })).status).toBe(404);
    expect(await keys('other')).toEqual(expect.arrayContaining([expect.objectContaining({ kid: otherKid, status: expect.not.stringMatching('revoked') })]));
    expect(await keys()).toEqual(before);
  });

  it('never shows key material in the admin API', async () => {
    const text = JSON.stringify(await keys());
    expect(text).not.toMatch(/privateJwk|"d"|"x"|ciphertext|v1\./);
  });

  it("a private key ciphertext copied into another tenant's row does not decrypt", async () => {
    const prisma = b.broker.services.db.prisma;
    const src = await prisma.signingKey.findFirstOrThrow({ where: { tenantId: 'rot', status: 'active' } });
    const dst = await prisma.signingKey.findFirstOrThrow({ where: { tenantId: 'other', status: 'active' } });
    await prisma.signingKey.update({
      where: { tenantId_kid: { tenantId: 'other', kid: dst.kid } },
      data: { privateJwkEnc: src.privateJwkEnc },
    });
    await expect(b.broker.services.keys.loadForIssuer('other')).rejects.toBeInstanceOf(KeyDecryptionFailed);
    // Its own ciphertext, put back, decrypts again.
    await prisma.signingKey.update({ where: { tenantId_kid: { tenantId: 'other', kid: dst.kid } }, data: { privateJwkEnc: dst.privateJwkEnc } });
    await expect(b.broker.services.keys.loadForIssuer('other')).resolves.toMatchObject({ signer: { kid: dst.kid } });
  });
});
