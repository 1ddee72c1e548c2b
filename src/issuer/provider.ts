import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { SigningKey } from '../generated/prisma/client.js';
import type { ClientService } from '../clients/service.js';
import type { SecretVerifier } from '../clients/secrets.js';
import { CLIENT_ASSERTION_ALGS } from '../clients/service.js';
import type { ReplayStore } from '../shared/replay.js';
import * as clientCredentials from '../grants/client-credentials.js';
import { tenantAdapter } from './adapter.js';
import { toProviderMetadata } from './client-metadata.js';
import { mintAccessToken } from './mint.js';
import type { IssuerContext, Signer, TenantSnapshot } from './context.js';

/** A client assertion (RFC 7523) may live at most this long; longer ones are refused. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
export const CLOCK_TOLERANCE_SECONDS = 15;

export interface IssuerObserver {
  issued?(tenantId: string, grantType: string, ctx: KoaContextWithOIDC): void;
  refused?(tenantId: string, reason: string, ctx: KoaContextWithOIDC): void;
  serverError?(tenantId: string, err: unknown): void;
}

export interface BuildIssuerDeps {
  clients: ClientService;
  secrets: SecretVerifier;
  replay: ReplayStore;
  observer?: IssuerObserver;
}

/** The grant types every tenant issuer supports (the token-exchange grant joins in its issue). */
const GRANTS = [clientCredentials];

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

  const configuration: Configuration = {
    adapter: tenantAdapter(async (id) => {
      const c = await deps.clients.findActive(tenant.id, id);
      return c && toProviderMetadata(c, grantTypes);
    }),
    clients: [],
    jwks: { keys: [signer.privateJwk as never] },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: {
      clientAuthSigningAlgValues: CLIENT_ASSERTION_ALGS as never,
      idTokenSigningAlgValues: [signer.alg as never],
    },
    // oidc-provider validates every client against these defaults; Bulkhead issues no ID tokens.
    clientDefaults: { id_token_signed_response_alg: signer.alg, grant_types: grantTypes, response_types: [] } as never,
    extraClientMetadata: { properties: ['bulkhead'], validator() {} },
    responseTypes: ['none'],
    scopes: [],
    claims: {},
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      clientCredentials: { enabled: false },
      introspection: { enabled: false },
      revocation: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: { enabled: true, useGrantedResource: () => false },
    },
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    // RFC 9068 access tokens carry the tenant they were minted for.
    extraTokenClaims: () => ({ tenant_id: tenant.id }),
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? tenant.tokenTtl,
    },
    // RFC 7523bis: the assertion's audience is this issuer and nothing else; its lifetime is
    // short; its jti is single-use across every replica (atomic, unlike a find-then-save).
    async assertJwtClientAuthClaimsAndHeader(_ctx, claims) {
      if (claims.aud !== issuer) {
        throw new errors.InvalidClientAuth('client assertion audience must be the issuer identifier');
      }
      const now = Math.floor(Date.now() / 1000);
      const exp = Number(claims.exp);
      if (exp - now > MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS) {
        throw new errors.InvalidClientAuth(`client assertion must expire within ${MAX_ASSERTION_LIFETIME_SECONDS} seconds`);
      }
      const fresh = await deps.replay.markUsed(`assertion\0${tenant.id}\0${String(claims.iss)}\0${String(claims.jti)}`, exp + CLOCK_TOLERANCE_SECONDS);
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
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientId: string; clientSecret?: string }, presented: string) {
    if (!this.clientSecret) return Promise.resolve(false);
    return deps.secrets.verify(tenant.id, this.clientId, this.clientSecret, presented);
  } as never;

  const context: IssuerContext = {
    issuer,
    tenant,
    signer,
    keys,
    provider,
    mint: (ctx, request) => mintAccessToken(provider, signer, ctx, request),
  };

  for (const grant of GRANTS) {
    provider.registerGrantType(grant.grantType, grant.handler(context) as never, grant.parameters, grant.allowDuplicates);
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
