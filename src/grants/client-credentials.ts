import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { readBulkheadMetadata } from '../issuer/client-metadata.js';
import { capTtl, decideClientCredentials, parseScopeParam, type Refusal } from './rules.js';
import type { GrantDeps, IssuerContext } from '../issuer/context.js';
import { tokenEndpointProof } from './dpop.js';
import type { AuditFacts } from '../audit/http.js';
import { enforcePolicy } from './policy.js';

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

/** The audit facts of an issued token (recorded by src/audit/http.ts before the token leaves). */
function issuedFacts(clientId: string, jti: string, scopes: string[], audience: string, detail: Record<string, unknown>): AuditFacts {
  return { type: 'token.issued', clientId, subject: clientId, jti, scopes, audience, detail };
}

export function handler(issuer: IssuerContext, deps: GrantDeps) {
  return async function clientCredentials(ctx: KoaContextWithOIDC): Promise<void> {
    const { client, params } = ctx.oidc;
    if (!client || !params) throw new errors.InvalidClient();
    const meta = readBulkheadMetadata(client);

    if (issuer.tenant.status !== 'active') {
      throw new errors.AccessDenied(`tenant ${issuer.tenant.id} is suspended and issues no tokens`);
    }
    // An agent installed here from another tenant may only exchange: its credential comes from home.
    if (!meta.grantTypes.includes(grantType) || meta.homeTenant !== issuer.tenant.id) {
      throw new errors.UnauthorizedClient('this client may not use the client_credentials grant');
    }
    const resources = asList(params.resource);
    const proofJkt = await tokenEndpointProof(ctx, issuer, deps.replay);

    // An agent asking for no resource gets its agent credential: audience its own issuer, no
    // scope. It proves who the agent is and grants nothing; only token exchange accepts it.
    // No policy is asked here (Cedar's `issue` is about a resource, and this names none): every
    // exchange of the credential is decided by the policy of the tenant it is exchanged in.
    if (meta.kind === 'agent' && resources.length === 0) {
      if (params.scope !== undefined && params.scope !== '') {
        throw new errors.InvalidScope('an agent credential carries no scope: ask for scopes by token exchange', String(params.scope));
      }
      const minted = await issuer.mint({
        subject: client.clientId,
        clientId: client.clientId,
        audience: issuer.issuer,
        scopes: [],
        ttl: capTtl(issuer.tenant.tokenTtl, meta.tokenTtl),
        ...(proofJkt ? { jkt: proofJkt } : {}),
      });
      ctx.state.audit = issuedFacts(client.clientId, minted.jti, [], issuer.issuer, { agent_credential: true, dpop: Boolean(proofJkt) });
      ctx.body = { access_token: minted.token, token_type: proofJkt ? 'DPoP' : 'Bearer', expires_in: minted.expiresIn };
      return;
    }

    const decision = decideClientCredentials({
      requestedResources: resources,
      requestedScopes: parseScopeParam(params.scope),
      client: meta,
      tenantTtl: issuer.tenant.tokenTtl,
    });
    if (!decision.ok) throw refusalError(decision);
    if (decision.requireDpop && !proofJkt) {
      throw new errors.InvalidRequest('a DPoP proof is required: tokens for this resource must be DPoP-bound');
    }

    // Last, the tenant's policy (with the platform baseline) on exactly what is about to be issued.
    await enforcePolicy(ctx, deps, {
      tenantId: issuer.tenant.id,
      action: 'issue',
      principal: { type: meta.kind === 'agent' ? 'Agent' : 'Client', id: client.clientId, tenants: [meta.homeTenant] },
      resource: { uri: decision.audience, tenantId: issuer.tenant.id },
      context: {
        scopes: decision.scopes,
        ttl: decision.ttl,
        dpop: Boolean(proofJkt),
        actorChain: [],
        time: Math.floor(Date.now() / 1000),
        ttlCap: issuer.tenant.tokenTtl,
      },
    });

    const minted = await issuer.mint({
      subject: client.clientId,
      clientId: client.clientId,
      audience: decision.audience,
      scopes: decision.scopes,
      ttl: decision.ttl,
      ...(proofJkt ? { jkt: proofJkt } : {}),
    });

    ctx.state.audit = issuedFacts(client.clientId, minted.jti, decision.scopes, decision.audience, { dpop: Boolean(proofJkt) });
    ctx.body = {
      access_token: minted.token,
      token_type: proofJkt ? 'DPoP' : 'Bearer',
      expires_in: minted.expiresIn,
      scope: decision.scopes.join(' '),
    };
  };
}
