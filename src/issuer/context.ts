import type { KoaContextWithOIDC, Provider } from 'oidc-provider';
import type { JWK } from 'jose';
import type { SigningKey, Tenant } from '../generated/prisma/client.js';

/** What a tenant's issuer knows about its tenant, frozen when the issuer is built. */
export interface TenantSnapshot {
  id: string;
  status: string;
  tokenTtl: number;
}

export interface Signer {
  kid: string;
  alg: string;
  privateJwk: JWK;
}

export interface MintRequest {
  audience: string;
  scopes: string[];
  ttl: number;
}

/** One tenant's issuer: its identity, keys, oidc-provider instance and the way it mints tokens. */
export interface IssuerContext {
  readonly issuer: string;
  readonly tenant: TenantSnapshot;
  readonly signer: Signer;
  /** Every key row the JWKS is built from (pending, active, retired; never revoked). */
  readonly keys: SigningKey[];
  readonly provider: Provider;
  mint(ctx: KoaContextWithOIDC, request: MintRequest): Promise<string>;
}

export function snapshotTenant(t: Tenant): TenantSnapshot {
  return { id: t.id, status: t.status, tokenTtl: t.tokenTtl };
}
