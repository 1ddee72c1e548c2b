import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { ParameterizedContext } from 'koa';
import type { IssuerContext } from '../issuer/context.js';
import { CLOCK_TOLERANCE_SECONDS } from '../issuer/constants.js';
import { assertionProblem, assertionReplayId, assertionReplayUntil, refuseOversizeAssertion } from '../issuer/client-assertion.js';
import { CLIENT_ASSERTION_ALGS, type ClientService, type ClientWithResources } from '../clients/service.js';
import type { SecretVerifier } from '../clients/secrets.js';
import { findTenantClient, type AgentService } from '../agents/service.js';
import type { ReplayStore } from '../shared/replay.js';
import { BulkheadError, InvalidInput, Unavailable } from '../shared/errors.js';
import { bufferBody, parseBasicCredentials } from '../http/body.js';
import { verifyPresentedToken } from '../grants/presented-token.js';
import type { AuditFacts } from '../audit/http.js';
import { MAX_JTI_LENGTH, type RevocationService } from './revocations.js';

/**
 * Token introspection (RFC 7662) and revocation (RFC 7009) at `/t/T/introspect` and
 * `/t/T/revoke`. Bulkhead's access tokens are self-contained JWTs that oidc-provider does not
 * store, so these are Bulkhead's own endpoints. The caller authenticates as a client of T (the
 * same three methods as at the token endpoint) and only ever learns about T's tokens: anything
 * else, another tenant's valid token included, is `{"active": false}` exactly as garbage is.
 */

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

class InvalidClient extends BulkheadError {
  constructor() {
    super(401, 'invalid_client', 'client authentication failed');
  }
}

export interface TokenEndpointDeps {
  clients: Pick<ClientService, 'findActive'>;
  agents: Pick<AgentService, 'findActive' | 'homeOf'>;
  secrets: Pick<SecretVerifier, 'verify'>;
  replay: ReplayStore;
  revocations: Pick<RevocationService, 'isInactive' | 'revoke'>;
  maxBodyBytes: number;
}

/** The form body, each parameter at most once (RFC 6749 §3.2). */
async function readForm(ctx: ParameterizedContext, limit: number): Promise<Map<string, string>> {
  if (!ctx.is('application/x-www-form-urlencoded')) throw new InvalidInput('the request body must be application/x-www-form-urlencoded');
  const params = new URLSearchParams((await bufferBody(ctx, limit)).toString('utf8'));
  const form = new Map<string, string>();
  let n = 0;
  for (const [k, v] of params) {
    if (++n > 100) throw new InvalidInput('too many parameters');
    if (form.has(k)) throw new InvalidInput(`parameter ${k} must not be repeated`);
    form.set(k, v);
  }
  return form;
}


/** Authenticates the calling client of this tenant, or throws 401 invalid_client. */
async function authenticate(ctx: ParameterizedContext, form: Map<string, string>, issuer: IssuerContext, deps: TokenEndpointDeps): Promise<ClientWithResources> {
  const basic = parseBasicCredentials(ctx.get('authorization') || undefined);
  if (basic === null) throw new InvalidClient();
  const post = form.has('client_secret');
  const assertion = form.get('client_assertion');
  if ([basic, post, assertion].filter(Boolean).length !== 1) throw new InvalidClient();

  const tenantId = issuer.tenant.id;
  if (basic || post) {
    const [id, secret] = basic ?? [form.get('client_id') ?? '', form.get('client_secret') ?? ''];
    if (basic && form.has('client_id') && form.get('client_id') !== id) throw new InvalidClient();
    const client = await findTenantClient(deps, tenantId, id);
    const method = basic ? 'client_secret_basic' : 'client_secret_post';
    if (!client?.secretHash || client.authMethod !== method) throw new InvalidClient();
    if (!(await deps.secrets.verify(client.tenantId, client.id, client.secretHash, secret))) throw new InvalidClient();
    return client;
  }

  if (form.get('client_assertion_type') !== ASSERTION_TYPE) throw new InvalidClient();
  refuseOversizeAssertion(assertion);
  const unverified = (() => {
    try {
      return JSON.parse(Buffer.from(assertion!.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
    } catch {
      return {};
    }
  })();
  const id = typeof unverified.sub === 'string' ? unverified.sub : '';
  const client = await findTenantClient(deps, tenantId, id);
  if (!client || client.authMethod !== 'private_key_jwt' || !client.jwks) throw new InvalidClient();
  let jti: string;
  let exp: number;
  try {
    const { payload } = await jwtVerify(assertion!, createLocalJWKSet(client.jwks as unknown as JSONWebKeySet), {
      issuer: client.id,
      subject: client.id,
      audience: issuer.issuer,
      algorithms: CLIENT_ASSERTION_ALGS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp', 'jti'],
    });
    if (assertionProblem(payload, issuer.issuer)) throw new Error('refused');
    jti = payload.jti as string;
    exp = payload.exp!;
  } catch {
    throw new InvalidClient();
  }
  // Single use, in the store shared with the token endpoint (an outage there is a 503).
  const fresh = await deps.replay.markUsed(assertionReplayId(tenantId, client.id, jti), assertionReplayUntil(exp)).catch(() => {
    throw new Unavailable('the service is temporarily unavailable');
  });
  if (!fresh) throw new InvalidClient();
  return client;
}

/** Whether the client a token was issued to may still hold tokens in this tenant. */
async function holderStillAllowed(tenantId: string, clientId: string, deps: TokenEndpointDeps): Promise<boolean> {
  if (await deps.clients.findActive(tenantId, clientId)) return true;
  // An agent from another tenant: only while its delegation here is active.
  return (await deps.agents.findActive(tenantId, clientId)) !== undefined;
}

async function handle(kind: 'introspect' | 'revoke', ctx: ParameterizedContext, issuer: IssuerContext, deps: TokenEndpointDeps): Promise<void> {
  if (ctx.method !== 'POST') {
    ctx.status = 405;
    ctx.set('Allow', 'POST');
    ctx.body = { error: 'invalid_request', error_description: 'use POST' };
    return;
  }
  ctx.set('Cache-Control', 'no-store');
  const form = await readForm(ctx, deps.maxBodyBytes);
  let caller: ClientWithResources;
  try {
    caller = await authenticate(ctx, form, issuer, deps);
  } catch (err) {
    if (err instanceof BulkheadError && err.status === 401) ctx.set('WWW-Authenticate', `Basic realm="${issuer.issuer}"`);
    throw err;
  }
  const raw = form.get('token');
  if (!raw) throw new InvalidInput('the token parameter is required');

  // Only this tenant's issuer is trusted here: another tenant's token is simply not one of ours,
  // and neither is one with a jti Bulkhead never mints (longer than the revocation list holds:
  // only a holder of the tenant's key could make one, and revoking it failed with a 500).
  const presented = await verifyPresentedToken('subject_token', raw, [issuer]);
  const verified = presented.ok && presented.token.jti.length <= MAX_JTI_LENGTH ? presented : undefined;

  if (kind === 'revoke') {
    // RFC 7009 §2.2: an invalid or unknown token is answered 200, as is one already revoked.
    if (verified) {
      const t = verified.token;
      // §2.1: a client may revoke only tokens issued to it.
      if (t.client_id !== caller.id) {
        ctx.status = 400;
        ctx.body = { error: 'unauthorized_client', error_description: 'this token was not issued to this client' };
        return;
      }
      await deps.revocations.revoke(issuer.tenant.id, t.jti, t.exp);
      ctx.state.audit = { type: 'token.revoked', clientId: caller.id, subject: t.sub, jti: t.jti, scopes: t.scopes, audience: t.aud[0] } satisfies AuditFacts;
    }
    ctx.status = 200;
    ctx.body = {};
    return;
  }

  const t = verified?.token;
  if (!t || deps.revocations.isInactive(t) || !(await holderStillAllowed(issuer.tenant.id, t.client_id, deps))) {
    ctx.body = { active: false };
    return;
  }
  ctx.body = {
    active: true,
    iss: t.iss,
    sub: t.sub,
    aud: t.aud.length === 1 ? t.aud[0] : t.aud,
    client_id: t.client_id,
    tenant_id: t.tenant_id,
    ...(t.scopes.length ? { scope: t.scopes.join(' ') } : {}),
    iat: t.iat,
    exp: t.exp,
    jti: t.jti,
    token_type: t.jkt ? 'DPoP' : 'Bearer',
    ...(t.act ? { act: t.act } : {}),
    ...(t.jkt ? { cnf: { jkt: t.jkt } } : {}),
  };
}

export function tokenEndpoints(deps: TokenEndpointDeps) {
  return {
    introspect: (ctx: ParameterizedContext, issuer: IssuerContext) => handle('introspect', ctx, issuer, deps),
    revoke: (ctx: ParameterizedContext, issuer: IssuerContext) => handle('revoke', ctx, issuer, deps),
  };
}

export type TokenEndpoints = ReturnType<typeof tokenEndpoints>;
