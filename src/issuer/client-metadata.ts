import type { ClientWithResources } from '../clients/service.js';
import type { ClientGrantable } from '../grants/rules.js';

/**
 * Translation between Bulkhead's client rows and oidc-provider's client metadata. The metadata
 * carries the argon2id hash in `client_secret` (compared by our own `compareClientSecret`, never
 * as plaintext) and Bulkhead's own grant inputs under `bulkhead`, so the grant handlers read the
 * exact row that authenticated the request, with no second lookup.
 */
export const BULKHEAD_METADATA = 'bulkhead';

export interface BulkheadClientMetadata extends ClientGrantable {
  kind: string;
  grantTypes: string[];
  /** The tenant the client is registered in: the issuer's own, or an agent's home elsewhere. */
  homeTenant: string;
}

export function toProviderMetadata(c: ClientWithResources, supportedGrantTypes: string[]): Record<string, unknown> {
  const bulkhead: BulkheadClientMetadata = {
    kind: c.kind,
    grantTypes: c.grantTypes,
    homeTenant: c.tenantId,
    scopes: c.scopes,
    tokenTtl: c.tokenTtl,
    resources: c.resources.map(({ resource: r }) => ({ uri: r.uri, scopes: r.scopes, tokenTtl: r.tokenTtl, requireDpop: r.requireDpop })),
  };
  return {
    client_id: c.id,
    ...(c.secretHash ? { client_secret: c.secretHash } : {}),
    token_endpoint_auth_method: c.authMethod,
    ...(c.jwks ? { jwks: c.jwks } : {}),
    // Every grant the issuer supports passes oidc-provider's generic check; the grant handler
    // then answers `unauthorized_client` (RFC 6749 §5.2) for grants this client may not use.
    grant_types: supportedGrantTypes,
    response_types: [],
    redirect_uris: [],
    [BULKHEAD_METADATA]: bulkhead,
  };
}

export function readBulkheadMetadata(client: { metadata(): Record<string, unknown> }): BulkheadClientMetadata {
  return client.metadata()[BULKHEAD_METADATA] as BulkheadClientMetadata;
}
