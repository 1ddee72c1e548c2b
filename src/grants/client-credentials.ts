import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { readBulkheadMetadata } from '../issuer/client-metadata.js';
import { decideClientCredentials, parseScopeParam, type Refusal } from './rules.js';
import type { IssuerContext } from '../issuer/context.js';

/**
 * OAuth 2.0 client credentials grant (RFC 6749 §4.4) with resource indicators (RFC 8707), issuing
 * RFC 9068 JWT access tokens. Registered through oidc-provider's public `registerGrantType`,
 * replacing the built-in handler so that Bulkhead's rules decide audience, scopes and lifetime:
 * see ./rules.ts for the rules themselves.
 */
export const grantType = 'client_credentials';
/** RFC 6749 §4.4.2 `scope`, RFC 8707 §2 `resource` (may repeat; we then refuse more than one). */
export const parameters = ['scope', 'resource'];
export const allowDuplicates = ['resource'];

/** Maps a refusal from the rules to oidc-provider's RFC-shaped errors. */
export function refusalError(r: Refusal): Error {
  switch (r.error) {
    case 'invalid_target':
      return new errors.InvalidTarget(r.description);
    case 'invalid_scope':
      return new errors.InvalidScope(r.description, undefined as unknown as string);
    default:
      return new errors.InvalidRequest(r.description);
  }
}

export function asList(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string');
}

export function handler(issuer: IssuerContext) {
  return async function clientCredentials(ctx: KoaContextWithOIDC): Promise<void> {
    const { client, params } = ctx.oidc;
    if (!client || !params) throw new errors.InvalidClient();
    const meta = readBulkheadMetadata(client);

    if (issuer.tenant.status !== 'active') {
      throw new errors.AccessDenied(`tenant ${issuer.tenant.id} is suspended and issues no tokens`);
    }
    if (!meta.grantTypes.includes(grantType)) {
      throw new errors.UnauthorizedClient('this client may not use the client_credentials grant');
    }

    const decision = decideClientCredentials({
      requestedResources: asList(params.resource),
      requestedScopes: parseScopeParam(params.scope),
      client: meta,
      tenantTtl: issuer.tenant.tokenTtl,
    });
    if (!decision.ok) throw refusalError(decision);

    const value = await issuer.mint(ctx, {
      audience: decision.audience,
      scopes: decision.scopes,
      ttl: decision.ttl,
    });

    ctx.body = {
      access_token: value,
      token_type: 'Bearer',
      expires_in: decision.ttl,
      scope: decision.scopes.join(' '),
    };
  };
}
