import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { KeyAlgorithm } from './lifecycle.js';

export interface KeyMaterial {
  kid: string;
  alg: KeyAlgorithm;
  publicJwk: JWK;
  privateJwk: JWK;
}

const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e'] as const;

/** Only the public members of a JWK, plus kid/alg/use: what a JWKS may ever contain. */
export function publicOnly(jwk: JWK): JWK {
  const out: JWK = {};
  for (const m of PUBLIC_MEMBERS) if (jwk[m] !== undefined) out[m] = jwk[m];
  for (const m of ['kid', 'alg', 'use'] as const) if (jwk[m] !== undefined) out[m] = jwk[m];
  return out;
}

/**
 * A new signing key pair. The kid is the RFC 7638 thumbprint of the public key, so it is stable,
 * unique and says nothing about the tenant. RSA keys are 2048 bits or more.
 */
export async function generateKeyMaterial(alg: KeyAlgorithm): Promise<KeyMaterial> {
  const options = alg === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { modulusLength: 2048, extractable: true };
  const { privateKey } = await generateKeyPair(alg, options);
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  const privateJwk: JWK = { ...jwk, kid, alg, use: 'sig' };
  return { kid, alg, privateJwk, publicJwk: publicOnly(privateJwk) };
}
