import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { readBulkheadMetadata } from '../issuer/client-metadata.js';
import type { ActClaim, GrantDeps, IssuerContext } from '../issuer/context.js';
import { TOKEN_EXCHANGE } from '../clients/service.js';
import { asList, refusalError } from './client-credentials.js';
import { parseScopeParam, type Decision, type ResourceGrantable } from './rules.js';
import {
  chainActors, checkHolder, checkTokenTypes, chooseExchangeAudience, classifySubject, dpopBinding,
  exchangeExpiry, exchangeLineage, exchangeScopes, TOKEN_TYPE,
} from './exchange-rules.js';
import { verifyPresentedToken } from './presented-token.js';
import { tokenEndpointProof } from './dpop.js';
import type { AuditFacts } from '../audit/http.js';
import { actorSubjects, enforcePolicy } from './policy.js';

/**
 * OAuth 2.0 Token Exchange (RFC 8693) at `/t/T/token`: an agent (or a client of T) trades a
 * token it holds for a new access token bound to tenant T, one resource, no more scopes than
 * every bound allows, and no longer life than the token it traded. It only ever narrows.
 *
 * - §2.1 request: `subject_token` + `subject_token_type` (required), `actor_token` +
 *   `actor_token_type`, `requested_token_type`, `resource` (RFC 8707), `audience`, `scope`.
 * - §2.2.1 response: `access_token`, `issued_token_type`, `token_type` (`Bearer`, or `DPoP` when
 *   bound per RFC 9449 §5), `expires_in`, `scope`. No refresh token, ever.
 * - §2.2.2 errors: a subject or actor token that is malformed, expired, foreign, unbound to this
 *   client or otherwise unacceptable is `invalid_request`; a resource outside the bounds is
 *   `invalid_target`; a scope outside them is `invalid_scope`.
 * - §5: the client authenticates (oidc-provider does that before this runs; an agent from
 *   another tenant is a client here only while it holds an active delegation, see
 *   src/issuer/provider.ts) and must be the token's holder or be named in its `may_act` (§4.4).
 * - §4.1: the subject's `act` chain is kept, a new actor nests it, the depth is bounded.
 *
 * The decisions themselves are the pure functions of ./exchange-rules.ts.
 */
export const grantType = TOKEN_EXCHANGE;
export const parameters = [
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'requested_token_type', 'resource', 'audience', 'scope',
];
/** RFC 8693 §2.1 and RFC 8707 §2: `resource` and `audience` may repeat (we then refuse several). */
export const allowDuplicates = ['resource', 'audience'];

function must<T>(d: Decision<T>): { ok: true } & T {
  if (!d.ok) throw refusalError(d);
  return d;
}

interface Ceiling {
  /** The delegation it comes from, for an agent. */
  delegation?: string;
  scopes: string[];
  resources: ResourceGrantable[];
  ttl: number | null;
  notAfter: number | null;
  requireDpop: boolean;
}

export function handler(issuer: IssuerContext, deps: GrantDeps) {
  return async function tokenExchange(ctx: KoaContextWithOIDC): Promise<void> {
    const { client, params } = ctx.oidc;
    if (!client || !params) throw new errors.InvalidClient();
    const meta = readBulkheadMetadata(client);
    const clientId = client.clientId;
    const foreign = meta.homeTenant !== issuer.tenant.id;

    if (issuer.tenant.status !== 'active') {
      throw new errors.AccessDenied(`tenant ${issuer.tenant.id} is suspended and issues no tokens`);
    }
    if (!meta.grantTypes.includes(grantType)) {
      throw new errors.UnauthorizedClient('this client may not use the token exchange grant');
    }
    must(checkTokenTypes({
      subjectTokenType: params.subject_token_type,
      actorToken: params.actor_token,
      actorTokenType: params.actor_token_type,
      requestedTokenType: params.requested_token_type,
    }));

    // The ceiling: an agent's delegation in this tenant, read now so that a revocation stops
    // the very next exchange; a client of this tenant's own registration otherwise.
    let ceiling: Ceiling;
    if (meta.kind === 'agent') {
      const d = await deps.agents.findActive(issuer.tenant.id, clientId);
      if (!d || d.agentTenantId !== meta.homeTenant) {
        // For an agent from elsewhere the delegation is what makes it a client here at all: the
        // same 401 as for an unknown client (RFC 6749 §5.2), not a 400 that tells them apart.
        if (foreign) throw new errors.InvalidClientAuth('no active delegation in this tenant');
        throw new errors.UnauthorizedClient(`this agent is not installed in tenant ${issuer.tenant.id}`);
      }
      ceiling = {
        delegation: d.id,
        scopes: d.scopes,
        resources: d.resources,
        ttl: d.tokenTtl,
        notAfter: d.expiresAt ? Math.floor(d.expiresAt.getTime() / 1000) : null,
        requireDpop: d.requireDpop,
      };
    } else {
      ceiling = { scopes: meta.scopes, resources: meta.resources, ttl: null, notAfter: null, requireDpop: false };
    }

    // Whose tokens are trusted here: this tenant's, and the agent's home issuer for its credential.
    const home = foreign ? await issuer.peer(meta.homeTenant) : issuer;
    if (!home || home.tenant.status !== 'active') throw new errors.InvalidClientAuth('the client\'s home tenant is not active');
    const trusted = foreign ? [issuer, home] : [issuer];

    const proofJkt = await tokenEndpointProof(ctx, issuer, deps.replay);

    const { token: subject } = must(await verifyPresentedToken('subject_token', params.subject_token, trusted));
    if (deps.revocations.isInactive(subject)) throw new errors.InvalidRequest('subject_token: has been revoked');
    const { kind } = must(classifySubject(subject, {
      tenantId: issuer.tenant.id,
      issuer: issuer.issuer,
      clientHomeTenant: home.tenant.id,
      clientHomeIssuer: home.issuer,
      clientIsAgent: meta.kind === 'agent',
    }));
    if (!checkHolder(subject, clientId, home.issuer)) {
      throw new errors.InvalidRequest('subject_token: was not issued to this client and does not name it in may_act');
    }

    // The actor: the actor token's subject when one is sent (it must be this client's own
    // token, about this client itself: a token it holds for someone else would make that
    // someone the actor); else this client itself when it acts for a subject that is not its own.
    let actor: ActClaim | undefined;
    let actorJkt: string | undefined;
    if (params.actor_token !== undefined) {
      const { token: a } = must(await verifyPresentedToken('actor_token', params.actor_token, trusted));
      if (deps.revocations.isInactive(a)) throw new errors.InvalidRequest('actor_token: has been revoked');
      if (a.client_id !== clientId) throw new errors.InvalidRequest('actor_token: was not issued to this client');
      if (a.sub !== clientId) throw new errors.InvalidRequest('actor_token: must identify this client itself');
      actor = { sub: a.sub, iss: a.iss };
      actorJkt = a.jkt;
    } else if (subject.client_id !== clientId) {
      actor = { sub: clientId, iss: home.issuer };
    }
    const { act } = must(chainActors(subject.act, actor, deps.maxActDepth));
    const { lineage } = must(exchangeLineage(subject));

    const { resource } = must(chooseExchangeAudience(
      { resources: asList(params.resource), audiences: asList(params.audience) },
      ceiling.resources,
      { kind, aud: subject.aud },
    ));
    const { scopes } = must(exchangeScopes(parseScopeParam(params.scope), { kind, scopes: subject.scopes }, ceiling.scopes, resource.scopes));
    const now = Math.floor(Date.now() / 1000);
    const { exp } = must(exchangeExpiry({
      now,
      subjectExp: subject.exp,
      caps: [issuer.tenant.tokenTtl, meta.tokenTtl, ceiling.ttl, resource.tokenTtl],
      notAfter: ceiling.notAfter,
    }));
    const { jkt } = must(dpopBinding({
      proofJkt,
      boundTo: [subject.jkt, actorJkt],
      required: ceiling.requireDpop || resource.requireDpop === true,
    }));

    // Last, the tenant's policy (with the platform baseline) on exactly what is about to be issued.
    await enforcePolicy(ctx, deps, {
      tenantId: issuer.tenant.id,
      action: 'exchange',
      principal: {
        type: meta.kind === 'agent' ? 'Agent' : 'Client',
        id: clientId,
        // An agent from elsewhere belongs to its home and, through its delegation, to this tenant.
        tenants: foreign && ceiling.delegation !== undefined ? [meta.homeTenant, issuer.tenant.id] : [meta.homeTenant],
      },
      resource: { uri: resource.uri, tenantId: issuer.tenant.id },
      context: {
        scopes,
        ttl: exp - now,
        dpop: Boolean(jkt),
        actorChain: actorSubjects(act),
        time: now,
        ttlCap: issuer.tenant.tokenTtl,
        subject: subject.sub,
        ...(ceiling.delegation !== undefined ? { delegation: ceiling.delegation } : {}),
      },
    });

    const minted = await issuer.mint({
      subject: subject.sub,
      clientId,
      audience: resource.uri,
      scopes,
      ttl: exp - now,
      exp,
      now: now * 1000,
      ...(act ? { act } : {}),
      ...(jkt ? { jkt } : {}),
      exchangedFrom: lineage,
    });

    ctx.state.audit = {
      type: 'token.exchanged',
      clientId,
      subject: subject.sub,
      jti: minted.jti,
      scopes,
      audience: resource.uri,
      detail: {
        subject_jti: subject.jti,
        subject_client_id: subject.client_id,
        ...(act ? { act } : {}),
        ...(ceiling.delegation ? { delegation: ceiling.delegation } : {}),
        dpop: Boolean(jkt),
      },
    } satisfies AuditFacts;
    ctx.body = {
      access_token: minted.token,
      issued_token_type: TOKEN_TYPE.accessToken,
      token_type: jkt ? 'DPoP' : 'Bearer',
      expires_in: minted.expiresIn,
      scope: scopes.join(' '),
    };
  };
}
