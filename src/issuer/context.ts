import type { Provider } from 'oidc-provider';
import type { JWK } from 'jose';
import type { SigningKey, Tenant } from '../generated/prisma/client.js';
import type { AgentService } from '../agents/service.js';
import type { ReplayStore } from '../shared/replay.js';
import type { Ancestor, RevocationService } from '../tokens/revocations.js';
import type { PolicyService } from '../policy/service.js';

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

/** The RFC 8693 §4.1 `act` claim: the current actor, with the prior ones nested inside. */
export interface ActClaim {
  sub: string;
  iss?: string;
  act?: ActClaim;
}

export interface MintRequest {
  /** `sub`: the client itself for client credentials, the subject token's `sub` for exchanges. */
  subject: string;
  clientId: string;
  audience: string;
  scopes: string[];
  /** Lifetime in seconds from now; ignored when `exp` is given. */
  ttl: number;
  /** Absolute expiry (epoch seconds), for exchanges capped by their subject token. */
  exp?: number;
  act?: ActClaim;
  /** RFC 9449 `cnf.jkt`: the DPoP key this token is bound to. */
  jkt?: string;
  /** The tokens this one was exchanged from, nearest first (revoking one revokes this). */
  exchangedFrom?: Ancestor[];
  now?: number;
}

export interface MintedToken {
  token: string;
  jti: string;
  exp: number;
  expiresIn: number;
}

/** One tenant's issuer: its identity, keys, oidc-provider instance and the way it mints tokens. */
export interface IssuerContext {
  readonly issuer: string;
  readonly tenant: TenantSnapshot;
  readonly signer: Signer;
  /** Every key row the JWKS is built from (pending, active, retired; never revoked). */
  readonly keys: SigningKey[];
  readonly provider: Provider;
  mint(request: MintRequest): Promise<MintedToken>;
  /** Another tenant's issuer (an agent's home), for verifying the tokens it signed. */
  peer(tenantId: string): Promise<IssuerContext | undefined>;
}

export function snapshotTenant(t: Tenant): TenantSnapshot {
  return { id: t.id, status: t.status, tokenTtl: t.tokenTtl };
}

/** What the grant handlers need beyond their own issuer. */
export interface GrantDeps {
  agents: Pick<AgentService, 'findActive'>;
  /** One-time-use ids: client assertions and DPoP proofs share it. */
  replay: ReplayStore;
  /** Longest `act` chain a token may carry. */
  maxActDepth: number;
  revocations: Pick<RevocationService, 'isInactive'>;
  /** The tenant's prepared Cedar policy set, asked last before minting (src/grants/policy.ts). */
  policies: Pick<PolicyService, 'forTenant'>;
}
