import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../config/index.js';

/**
 * Envelope encryption of tenant private keys under the key-encryption key (KEK).
 * AES-256-GCM with AAD = `tenantId \0 kid`: a ciphertext copied into another tenant's row, or
 * onto another kid, fails authentication instead of yielding a usable key.
 */

const VERSION = 'v1';

export class KeyDecryptionFailed extends Error {
  readonly code = 'ERR_KEY_DECRYPTION_FAILED';
}

function aad(tenantId: string, kid: string): Buffer {
  return Buffer.from(`bulkhead-signing-key\0${tenantId}\0${kid}`, 'utf8');
}

/** `v1.<iv>.<tag>.<ciphertext>`, each base64url. */
export function sealPrivateKey(kek: Buffer, tenantId: string, kid: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(aad(tenantId, kid));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [VERSION, iv, cipher.getAuthTag(), ct].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function openPrivateKey(kek: Buffer, tenantId: string, kid: string, sealed: string): string {
  const [version, iv, tag, ct] = sealed.split('.');
  if (version !== VERSION || !iv || !tag || ct === undefined) {
    throw new KeyDecryptionFailed(`sealed key ${kid} has an unknown format`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'));
    decipher.setAAD(aad(tenantId, kid));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyDecryptionFailed(`private key ${kid} of tenant ${tenantId} does not decrypt under this KEK and tenant`);
  }
}

/**
 * The KEK from `BULKHEAD_MASTER_KEY`, or from `$KEYS_DIR/master.key`, created on first run with
 * mode 0600 so that the embedded default needs no set-up.
 */
export function loadKek(config: Pick<Config, 'masterKey' | 'keysDir'>): Buffer {
  if (config.masterKey) return Buffer.from(config.masterKey, 'base64');
  const file = path.join(config.keysDir, 'master.key');
  if (!existsSync(file)) {
    mkdirSync(config.keysDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  const kek = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (kek.length !== 32) throw new Error(`${file} must hold base64 of exactly 32 bytes`);
  return kek;
}
