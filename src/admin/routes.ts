import Router from '@koa/router';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ParameterizedContext } from 'koa';
import type { Services } from '../services.js';
import { readJson } from '../http/body.js';
import { parseInput } from '../shared/validate.js';
import { InvalidInput, NotFound } from '../shared/errors.js';
import { LOOKUP_ID } from '../shared/ids.js';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../keys/lifecycle.js';
import { ADMIN_AUDIENCE, ADMIN_SCOPE, authorizeAdmin, requireAdmin, type AdminPrincipal } from './auth.js';
import { openApiDocument, revokeTokenInput } from './openapi.js';
import { auditAdminChanges, type AuditFacts } from '../audit/http.js';
import { eventToJson } from '../audit/event.js';
import { MAX_LIST } from '../audit/service.js';

/**
 * The audit event type of each admin route that changes something (src/audit/http.ts records one
 * event per such request, allowed or refused). test/audit checks every changing route is here.
 */
export const ADMIN_EVENT_TYPES: Readonly<Record<string, string>> = {
  'POST /admin/tenants': 'tenant.created',
  'POST /admin/tenants/:tenant/suspend': 'tenant.suspended',
  'POST /admin/tenants/:tenant/resume': 'tenant.resumed',
  'POST /admin/tenants/:tenant/keys/rotate': 'key.rotated',
  'POST /admin/tenants/:tenant/keys/:kid/revoke': 'key.revoked',
  'POST /admin/tenants/:tenant/resources': 'resource.created',
  'POST /admin/tenants/:tenant/clients': 'client.created',
  'POST /admin/tenants/:tenant/clients/:client/rotate-secret': 'client.secret_rotated',
  'POST /admin/tenants/:tenant/clients/:client/disable': 'client.disabled',
  'POST /admin/tenants/:tenant/agents': 'agent.created',
  'POST /admin/tenants/:tenant/delegations': 'delegation.granted',
  'POST /admin/tenants/:tenant/delegations/:delegation/revoke': 'delegation.revoked',
  'POST /admin/tenants/:tenant/tokens/revoke': 'token.revoked',
  'POST /admin/tenants/:tenant/clients/:client/revoke-tokens': 'tokens.revoked_all',
  'POST /admin/tenants/:tenant/delegations/:delegation/revoke-tokens': 'tokens.revoked_all',
  'PUT /admin/tenants/:tenant/limits': 'rate_limit.tenant_set',
  'PUT /admin/tenants/:tenant/clients/:client/limits': 'rate_limit.client_set',
  'PUT /admin/tenants/:tenant/policy': 'policy.set',
  'DELETE /admin/tenants/:tenant/policy': 'policy.deleted',
  // Not a change, but a decision run on the tenant's behalf: who tried which policy is worth keeping.
  'POST /admin/tenants/:tenant/policy/test': 'policy.tested',
};
export const adminEventType = (route: string): string => ADMIN_EVENT_TYPES[route] ?? 'admin.change';

const auditQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_LIST).default(50),
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
}).strict();
import { POLICY_BODY_BYTES } from '../policy/service.js';

/**
 * The admin HTTP API: JSON in and out, snake_case, every body validated with zod by the service
 * it reaches. Routes are thin: authenticate, read input, call one service function, answer.
 *
 * Who may call what (platform admins vs. tenant admins) is decided for every route in one place,
 * `authorizeAdmin` (./auth.ts), before any handler runs; handlers never check it themselves.
 */
export function adminRouter(services: Services, opts: { maxBodyBytes: number }): Router {
  const router = new Router({ prefix: '/admin' });
  const body = (ctx: ParameterizedContext) => readJson(ctx, opts.maxBodyBytes);
  /** The route's tenant, which must exist; remembered for the audit trail (the event goes to it). */
  const tenantOf = async (ctx: ParameterizedContext) => {
    const id = (await services.tenants.get(String(ctx.params.tenant))).id;
    ctx.state.adminTenant = id;
    return id;
  };
  const created = (ctx: ParameterizedContext, value: unknown) => {
    ctx.status = 201;
    ctx.body = value;
  };

  // Every id in a route (client, kid, delegation) is minted as printable ASCII: anything else
  // names nothing that exists, and must not reach a query (a NUL byte is a database error, not a
  // miss). The tenant is checked first, so the refusal is in that tenant's audit trail.
  for (const param of ['client', 'kid', 'delegation']) {
    router.param(param, async (value, ctx, next) => {
      if (LOOKUP_ID.test(value)) return next();
      await tenantOf(ctx);
      throw new NotFound(`${param === 'kid' ? 'key' : param} not found`);
    });
  }

  router.get('/openapi.json', (ctx) => {
    ctx.body = openApiDocument;
  });

  router.use(requireAdmin(services.issuers));
  // Around authorization, so a change refused there is in the trail too.
  router.use(auditAdminChanges(services.audit, adminEventType));
  router.use(authorizeAdmin(router));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  // Tenants
  router.post('/tenants', async (ctx) => {
    const tenant = await services.tenants.create(await body(ctx));
    // The tenant's own admin API resource, so its issuer can mint tenant-admin tokens: a platform
    // admin then gives the tenant an admin client (`client create --tenant T --scopes admin
    // --resources urn:bulkhead:admin`), whose tokens manage this tenant and only it.
    await services.resources.create(tenant.id, { uri: ADMIN_AUDIENCE, scopes: [ADMIN_SCOPE] });
    created(ctx, tenant);
  });
  router.get('/tenants', async (ctx) => {
    const admin = ctx.state.admin as AdminPrincipal;
    // A tenant admin sees its own tenant only.
    ctx.body = { tenants: admin.platform ? await services.tenants.list() : [await services.tenants.get(admin.tenantId)] };
  });
  router.get('/tenants/:tenant', async (ctx) => {
    ctx.body = await services.tenants.get(ctx.params.tenant!);
  });
  router.post('/tenants/:tenant/suspend', async (ctx) => {
    ctx.body = await services.tenants.setStatus(await tenantOf(ctx), 'suspended');
  });
  router.post('/tenants/:tenant/resume', async (ctx) => {
    ctx.body = await services.tenants.setStatus(await tenantOf(ctx), 'active');
  });

  // Keys
  router.get('/tenants/:tenant/keys', async (ctx) => {
    ctx.body = { keys: await services.keys.list(await tenantOf(ctx)) };
  });
  const rotateInput = z.object({ alg: z.enum(KEY_ALGORITHMS).optional() }).strict();
  router.post('/tenants/:tenant/keys/rotate', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const input = parseInput(rotateInput, await body(ctx));
    ctx.body = await services.keys.rotate(tenant, input.alg as KeyAlgorithm | undefined);
  });
  router.post('/tenants/:tenant/keys/:kid/revoke', async (ctx) => {
    ctx.body = await services.keys.revoke(await tenantOf(ctx), ctx.params.kid!);
  });

  // Resources
  router.post('/tenants/:tenant/resources', async (ctx) => {
    const tenant = await tenantOf(ctx);
    created(ctx, await services.resources.create(tenant, await body(ctx)));
  });
  router.get('/tenants/:tenant/resources', async (ctx) => {
    ctx.body = { resources: await services.resources.list(await tenantOf(ctx)) };
  });

  // Clients
  router.post('/tenants/:tenant/clients', async (ctx) => {
    const tenant = await tenantOf(ctx);
    created(ctx, await services.clients.create(tenant, await body(ctx)));
  });
  router.get('/tenants/:tenant/clients', async (ctx) => {
    ctx.body = { clients: await services.clients.list(await tenantOf(ctx)) };
  });
  router.get('/tenants/:tenant/clients/:client', async (ctx) => {
    ctx.body = await services.clients.get(await tenantOf(ctx), ctx.params.client!);
  });
  router.post('/tenants/:tenant/clients/:client/rotate-secret', async (ctx) => {
    ctx.body = await services.clients.rotateSecret(await tenantOf(ctx), ctx.params.client!);
  });
  router.post('/tenants/:tenant/clients/:client/disable', async (ctx) => {
    ctx.body = await services.clients.disable(await tenantOf(ctx), ctx.params.client!);
  });

  // Agents (clients of kind agent, in their home tenant) and their delegations (installations)
  router.post('/tenants/:tenant/agents', async (ctx) => {
    const tenant = await tenantOf(ctx);
    created(ctx, await services.agents.createAgent(tenant, await body(ctx)));
  });
  router.post('/tenants/:tenant/delegations', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const admin = ctx.state.admin as AdminPrincipal;
    created(ctx, await services.agents.grant(tenant, await body(ctx), admin.clientId));
  });
  router.get('/tenants/:tenant/delegations', async (ctx) => {
    ctx.body = { delegations: await services.agents.list(await tenantOf(ctx)) };
  });
  router.post('/tenants/:tenant/delegations/:delegation/revoke', async (ctx) => {
    ctx.body = await services.agents.revoke(await tenantOf(ctx), ctx.params.delegation!);
  });

  // Tokens: revocation of self-contained access tokens (src/tokens/revocations.ts)
  router.post('/tenants/:tenant/tokens/revoke', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const input = parseInput(revokeTokenInput, await body(ctx));
    const expiresAt = input.expires_at === undefined ? undefined : Math.ceil(Date.parse(input.expires_at) / 1000);
    if (expiresAt !== undefined && expiresAt * 1000 <= Date.now()) {
      // A revocation that ends before it starts revokes nothing: a mistyped instant must not pass for a revocation.
      throw new InvalidInput('expires_at: must be in the future (a token that has expired needs no revocation)');
    }
    await services.revocations.revoke(tenant, input.jti, expiresAt);
    ctx.body = { jti: input.jti, revoked: true };
  });
  router.post('/tenants/:tenant/clients/:client/revoke-tokens', async (ctx) => {
    const tenant = await tenantOf(ctx);
    parseInput(noInput, await body(ctx));
    const { client_id } = await services.clients.get(tenant, ctx.params.client!);
    ctx.body = { client_id, ...(await services.revocations.revokeAllOf(tenant, client_id)) };
  });
  router.post('/tenants/:tenant/delegations/:delegation/revoke-tokens', async (ctx) => {
    const tenant = await tenantOf(ctx);
    parseInput(noInput, await body(ctx));
    const d = await services.agents.get(tenant, ctx.params.delegation!);
    ctx.body = { delegation: d.id, client_id: d.client_id, ...(await services.revocations.revokeAllOf(tenant, d.client_id)) };
  });

  // Audit trail (src/audit): the newest events, or those after a seq (follow); chain verification.
  router.get('/tenants/:tenant/audit', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const q = parseInput(auditQuery, { ...ctx.query });
    ctx.body = { events: (await services.audit.list(tenant, q)).map(eventToJson) };
  });
  router.get('/tenants/:tenant/audit/verify', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const report = await services.audit.verify(tenant);
    ctx.body = { tenant_id: tenant, ok: report.ok, events: report.events, head: report.head, ...(report.broken ? { broken: report.broken } : {}) };
  });

  // Rate limits: the tenant's own rate (platform admins only, see PLATFORM_ONLY_ROUTES) and its
  // clients' rates (tenant admins too, capped by the tenant's rate). src/limits/overrides.ts.
  router.get('/tenants/:tenant/limits', async (ctx) => {
    ctx.body = await services.rateLimits.show(await tenantOf(ctx));
  });
  router.put('/tenants/:tenant/limits', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const limits = await services.rateLimits.setTenant(tenant, await body(ctx));
    ctx.state.audit = { detail: { ...limits.tenant } } satisfies AuditFacts;
    ctx.body = limits;
  });
  router.put('/tenants/:tenant/clients/:client/limits', async (ctx) => {
    const tenant = await tenantOf(ctx);
    ctx.body = await services.rateLimits.setClient(tenant, ctx.params.client!, await body(ctx));
  });

  // Policy: the tenant's Cedar policy set (src/policy/). Tenant admins manage their own.
  // A policy text (up to MAX_POLICY_BYTES, JSON-escaped) or a test table may exceed MAX_BODY_BYTES.
  const policyBody = (ctx: ParameterizedContext) => readJson(ctx, Math.max(opts.maxBodyBytes, POLICY_BODY_BYTES));
  router.get('/tenants/:tenant/policy', async (ctx) => {
    ctx.body = await services.policies.get(await tenantOf(ctx));
  });
  router.put('/tenants/:tenant/policy', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const admin = ctx.state.admin as AdminPrincipal;
    const policy = await services.policies.set(tenant, await policyBody(ctx), admin.clientId);
    // The trail names the version, its policies and a digest of its text (the text is in `policy show`).
    ctx.state.audit = {
      detail: { version: policy.version, policy_ids: policy.policy_ids, policy_sha256: createHash('sha256').update(policy.text ?? '').digest('hex') },
    } satisfies AuditFacts;
    ctx.body = policy;
  });
  router.delete('/tenants/:tenant/policy', async (ctx) => {
    ctx.body = await services.policies.remove(await tenantOf(ctx));
  });
  router.post('/tenants/:tenant/policy/test', async (ctx) => {
    const tenant = await tenantOf(ctx);
    const tested = await services.policies.test(tenant, await policyBody(ctx));
    ctx.state.audit = { detail: { policy: tested.policy, version: tested.version, rows: tested.results.length, passed: tested.passed } } satisfies AuditFacts;
    ctx.body = tested;
  });

  return router;
}

/** Routes that take no input accept an empty body or `{}`, and nothing else. */
const noInput = z.object({}).strict();
