import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeyDecryptionFailed, loadKek, openPrivateKey, sealPrivateKey } from '../../src/keys/kek.js';
import { generateKeyMaterial } from '../../src/keys/material.js';

describe('private keys at rest (AES-256-GCM, AAD = tenant + kid)', () => {
  const kek = randomBytes(32);
  const secret = JSON.stringify({ kty: 'EC', d: 'private' });

  it('round-trips under the same tenant and kid', () => {
    const sealed = sealPrivateKey(kek, 'acme', 'kid1', secret);
    expect(sealed).not.toContain('private');
    expect(openPrivateKey(kek, 'acme', 'kid1', sealed)).toBe(secret);
  });
  it.each([
    ['another tenant', 'globex', 'kid1', kek],
    ['another kid', 'acme', 'kid2', kek],
    ['another KEK', 'acme', 'kid1', randomBytes(32)],
  ])('does not decrypt for %s', (_n, tenant, kid, key) => {
    const sealed = sealPrivateKey(kek, 'acme', 'kid1', secret);
    expect(() => openPrivateKey(key, tenant, kid, sealed)).toThrow(KeyDecryptionFailed);
  });
  it('detects a flipped ciphertext bit', () => {
    const sealed = sealPrivateKey(kek, 'acme', 'kid1', secret);
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0]! ^= 1;
    parts[3] = ct.toString('base64url');
    expect(() => openPrivateKey(kek, 'acme', 'kid1', parts.join('.'))).toThrow(KeyDecryptionFailed);
  });
  it('creates the KEK file once with mode 0600 and reuses it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kek-'));
    const a = loadKek({ keysDir: dir, masterKey: undefined });
    const file = path.join(dir, 'master.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadKek({ keysDir: dir, masterKey: undefined }).equals(a)).toBe(true);
    expect(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')).toHaveLength(32);
    const env = randomBytes(32);
    expect(loadKek({ keysDir: dir, masterKey: env.toString('base64') }).equals(env)).toBe(true);
  });
});

describe('key material', () => {
  it.each(['ES256', 'EdDSA', 'RS256', 'PS256'] as const)('%s: public JWK has no private members, kid is the thumbprint', async (alg) => {
    const m = await generateKeyMaterial(alg);
    expect(m.publicJwk).toMatchObject({ kid: m.kid, alg, use: 'sig' });
    for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(m.publicJwk).not.toHaveProperty(p);
    expect(m.privateJwk).toHaveProperty('d');
    expect(m.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    if (alg === 'RS256' || alg === 'PS256') expect(Buffer.from(m.publicJwk.n!, 'base64url').length * 8).toBeGreaterThanOrEqual(2048);
  });
});
