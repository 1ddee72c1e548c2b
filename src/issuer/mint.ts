import type { KoaContextWithOIDC, Provider } from 'oidc-provider';
import type { MintRequest, Signer } from './context.js';

/**
 * Where every Bulkhead access token is minted. An RFC 9068 JWT (`typ: at+jwt`) signed by the
 * tenant's active key (`kid` in the header), with `iss` = the tenant issuer, `aud` = exactly the
 * granted resource, `sub` and `client_id` = the client, `scope`, `iat`, `exp`, a fresh `jti`,
 * and `tenant_id` (added by the issuer's `extraTokenClaims`). oidc-provider's token model does
 * the formatting and signing; this function decides nothing, the grant handlers have.
 */
export async function mintAccessToken(
  provider: Provider,
  signer: Pick<Signer, 'kid' | 'alg'>,
  ctx: KoaContextWithOIDC,
  { audience, scopes, ttl }: MintRequest,
): Promise<string> {
  const scope = scopes.join(' ');
  const token = new provider.ClientCredentials({ client: ctx.oidc.client!, scope });
  token.resourceServer = new provider.ResourceServer(audience, {
    audience,
    scope,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: signer.alg as 'ES256', kid: signer.kid } },
  });
  ctx.oidc.entity('ClientCredentials', token);
  return token.save();
}
