import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { SigningKey } from '../generated/prisma/client.js';
import type { ClientService } from '../clients/service.js';
import type { SecretVerifier } from '../clients/secrets.js';
import { CLIENT_ASSERTION_ALGS } from '../clients/service.js';
import type { ReplayStore } from '../shared/replay.js';
import * as clientCredentials from '../grants/client-credentials.js';
import * as tokenExchange from '../grants/token-exchange.js';
import { findTenantClient, type AgentService } from '../agents/service.js';
import type { RevocationService } from '../tokens/revocations.js';
import type { PolicyService } from '../policy/service.js';
import { DPOP_ALGS } from '../dpop/proof.js';
import { temporarilyUnavailable, tenantAdapter } from './adapter.js';
import { assertionProblem, assertionReplayId, assertionReplayUntil } from './client-assertion.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import { readBulkheadMetadata, toProviderMetadata } from './client-metadata.js';
import { mintAccessToken } from './mint.js';
import type { IssuerContext, Signer, TenantSnapshot } from './context.js';

import { CLOCK_TOLERANCE_SECONDS, MAX_ASSERTION_LIFETIME_SECONDS } from './constants.js';

export { CLOCK_TOLERANCE_SECONDS, MAX_ASSERTION_LIFETIME_SECONDS };
export { MAX_ASSERTION_JTI_LENGTH } from './client-assertion.js';

export interface IssuerObserver {
  issued?(tenantId: string, grantType: string, ctx: KoaContextWithOIDC): void;
  refused?(tenantId: string, reason: string, ctx: KoaContextWithOIDC): void;
  serverError?(tenantId: string, err: unknown): void;
}

export interface BuildIssuerDeps {
  clients: ClientService;
  agents: Pick<AgentService, 'findActive' | 'homeOf'>;
  secrets: SecretVerifier;
  replay: ReplayStore;
  /** Longest `act` chain a token may carry (RFC 8693 §4.1). */
  maxActDepth: number;
  revocations: Pick<RevocationService, 'isInactive' | 'cutoffWait'>;
  /** Tenant policies (src/policy/service.ts): the grants ask them last before minting. */
  policies: Pick<PolicyService, 'forTenant'>;
  /** Another tenant's issuer (an agent's home). */
  peer(tenantId: string): Promise<IssuerContext | undefined>;
  observer?: IssuerObserver;
}

/** The grant types every tenant issuer supports, each its own module. */
const GRANTS = [clientCredentials, tokenExchange];

/**
 * Builds one tenant's issuer: an oidc-provider instance whose issuer identifier is the tenant's
 * URL, whose only signing key is the tenant's active key, whose clients are the tenant's own
 * rows, and whose grants are Bulkhead's. Nothing in it can see another tenant.
 */
export function buildIssuer(
  issuer: string,
  tenant: TenantSnapshot,
  signer: Signer,
  keys: SigningKey[],
  deps: BuildIssuerDeps,
): IssuerContext {
  const grantTypes = GRANTS.map((g) => g.grantType);
  // Storage the grants read after client authentication: an outage is a retryable 503 there too.
  const available = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => (...a: A): Promise<R> =>
    f(...a).catch((err: unknown) => {
      throw isDatabaseUnavailable(err) ? temporarilyUnavailable() : err;
    });
  // The shared one-time-use store (Redis when configured): if it cannot answer, nothing is
  // accepted, and the caller gets a retryable 503 rather than a 500.
  const replay: ReplayStore = {
    markUsed: (id, exp) => deps.replay.markUsed(id, exp).catch(() => {
      throw temporarilyUnavailable();
    }),
  };

  const configuration: Configuration = {
    // The clients of this tenant are its own rows, plus every agent from another tenant that
    // holds an active delegation here (and only while it does); anyone else is unknown.
    adapter: tenantAdapter(async (id) => {
      const c = await findTenantClient(deps, tenant.id, id);
      return c && toProviderMetadata(c, grantTypes);
    }),
    clients: [],
    jwks: { keys: [signer.privateJwk as never] },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: {
      clientAuthSigningAlgValues: CLIENT_ASSERTION_ALGS as never,
      idTokenSigningAlgValues: [signer.alg as never],
      dPoPSigningAlgValues: [...DPOP_ALGS] as never,
    },
    // oidc-provider validates every client against these defaults; Bulkhead issues no ID tokens.
    clientDefaults: { id_token_signed_response_alg: signer.alg, grant_types: grantTypes, response_types: [] } as never,
    extraClientMetadata: { properties: ['bulkhead'], validator() {} },
    responseTypes: ['none'],
    scopes: [],
    claims: {},
    features: {
      devInteractions: { enabled: false },
      // DPoP (RFC 9449) is on, so the metadata advertises it; the proofs themselves are checked
      // by Bulkhead's grants (src/grants/dpop.ts → src/dpop/proof.ts), because oidc-provider hands
      // its DPoP helpers only to its built-in grants, not to grants added by registerGrantType.
      dPoP: { enabled: true, allowReplay: false },
      clientCredentials: { enabled: false },
      introspection: { enabled: false },
      revocation: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: { enabled: true, useGrantedResource: () => false },
    },
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    // RFC 7523bis: the assertion's audience is this issuer and nothing else; its lifetime is
    // short; its jti is single-use across every replica (atomic, unlike a find-then-save).
    async assertJwtClientAuthClaimsAndHeader(_ctx, claims) {
      const problem = assertionProblem(claims, issuer);
      if (problem) throw new errors.InvalidClientAuth(problem);
      const fresh = await replay.markUsed(assertionReplayId(tenant.id, String(claims.iss), claims.jti as string), assertionReplayUntil(claims.exp as number));
      if (!fresh) throw new errors.InvalidClientAuth('client assertion tokens must only be used once');
    },
    clientBasedCORS: () => false,
    // Errors are JSON for every caller, browsers included.
    async renderError(ctx, out) {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  };

  const provider = new Provider(issuer, configuration);

  // Client secrets are argon2id hashes; oidc-provider's plaintext comparison is replaced here.
  // The verified-secret cache is keyed by the client's home tenant, where its secret lives.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientId: string; clientSecret?: string; metadata(): Record<string, unknown> }, presented: string) {
    if (!this.clientSecret) return Promise.resolve(false);
    return deps.secrets.verify(readBulkheadMetadata(this).homeTenant, this.clientId, this.clientSecret, presented);
  } as never;

  const context: IssuerContext = {
    issuer,
    tenant,
    signer,
    keys,
    provider,
    async mint(request) {
      let wait = deps.revocations.cutoffWait(tenant.id, request.clientId);
      if (wait === 0) return mintAccessToken(issuer, tenant.id, signer, request);
      // Timers run on a monotonic clock and may fire a little before the wall clock reaches
      // the target; wait until the wall clock (which `iat` is read from) is past it.
      while (wait > 0) {
        await new Promise((resolve) => setTimeout(resolve, wait + 1));
        wait = deps.revocations.cutoffWait(tenant.id, request.clientId);
      }
      const { now: _decidedAt, ...rest } = request;
      if (rest.exp !== undefined && rest.exp <= Math.floor(Date.now() / 1000)) {
        throw new errors.InvalidRequest('the subject token expires too soon to be exchanged');
      }
      return mintAccessToken(issuer, tenant.id, signer, rest);
    },
    peer: available(deps.peer),
  };

  // A policy that cannot be read is a 503, never "no policy": the grants fail closed.
  const grantDeps = {
    agents: { findActive: available(deps.agents.findActive) },
    replay,
    maxActDepth: deps.maxActDepth,
    revocations: deps.revocations,
    policies: { forTenant: available(deps.policies.forTenant) },
  };
  for (const grant of GRANTS) {
    provider.registerGrantType(grant.grantType, grant.handler(context, grantDeps) as never, grant.parameters, grant.allowDuplicates);
  }

  const { observer } = deps;
  if (observer) {
    provider.on('grant.success', (ctx: KoaContextWithOIDC) => observer.issued?.(tenant.id, String(ctx.oidc.params?.grant_type), ctx));
    provider.on('grant.error', (ctx: KoaContextWithOIDC, err: { error?: string }) => observer.refused?.(tenant.id, err.error ?? 'unknown', ctx));
    provider.on('server_error', (ctx: KoaContextWithOIDC, err: unknown) => {
      observer.refused?.(tenant.id, 'server_error', ctx);
      observer.serverError?.(tenant.id, err);
    });
  }
  return context;
}
