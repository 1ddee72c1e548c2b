import { z } from 'zod';
import { createTenantInput } from '../tenants/service.js';
import { createResourceInput } from '../resources/service.js';
import { createClientInput } from '../clients/service.js';
import { createAgentInput, grantDelegationInput } from '../agents/service.js';
import { KEY_ALGORITHMS } from '../keys/lifecycle.js';
import { ADMIN_AUDIENCE, ADMIN_SCOPE } from './auth.js';
import { setRateLimitInput } from '../limits/overrides.js';
import { setPolicyInput, testPolicyInput } from '../policy/service.js';

/**
 * Body of `POST /admin/tenants/{tenant}/tokens/revoke`: a token id as Bulkhead mints them
 * (base64url), bounded as the revocation list stores it, and optionally when the token expires.
 * Defined here, where it is described, and imported by ./routes.ts, which validates with it
 * (routes.ts imports this module, so the other way round would be an import cycle).
 */
export const revokeTokenInput = z.object({
  jti: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of the base64url alphabet (A-Z a-z 0-9 - _)'),
  expires_at: z.iso.datetime({ offset: true }).optional(),
}).strict();

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
const json = (ref: string) => ({ content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
const ok = (description: string, ref?: string) => ({ description, ...(ref ? json(ref) : {}) });
const errors = {
  '400': ok('invalid_request: the body or a parameter is invalid', 'Error'),
  '401': ok('invalid_token: missing, invalid or expired access token', 'Error'),
  '403': ok('insufficient_scope: the token lacks the admin scope, or the route is for platform admins only', 'Error'),
  '404': ok("not_found: unknown tenant, key, client or path; for a tenant admin, also any other tenant", 'Error'),
  '409': ok('conflict: duplicate or state conflict', 'Error'),
  '413': ok('request body too large', 'Error'),
};
const tenantParam = { name: 'tenant', in: 'path', required: true, schema: { type: 'string' } };
const pathParam = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const op = (summary: string, response: string, extra: Record<string, unknown> = {}) => ({
  summary,
  ...extra,
  responses: { '200': ok(summary, response), ...errors },
});
const create = (summary: string, input: string, response: string, params: unknown[] = []) => ({
  summary,
  parameters: params,
  requestBody: { required: true, ...json(input) },
  responses: { '201': ok('created', response), ...errors },
});

/** The admin API's OpenAPI 3.1 description, served at /admin/openapi.json. */
export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Bulkhead admin API',
    version: '1',
    description: [
      `Authenticate with a Bulkhead access token (client credentials, resource=${ADMIN_AUDIENCE}, scope=${ADMIN_SCOPE}).`,
      'Platform admins use a token from the system tenant (/t/system/token) and manage every tenant.',
      `Tenant admins use a token from their own tenant T (/t/T/token) and manage only T: every /admin/tenants/T/... route and GET /admin/tenants/T; GET /admin/tenants lists T alone.`,
      "Another tenant's routes answer 404 not_found, exactly as for an unknown tenant; creating, suspending and resuming tenants, and setting a tenant's own rate limit, is for platform admins only (403 insufficient_scope). A suspended tenant's admin tokens are refused (401).",
      `Every tenant is created with the resource ${ADMIN_AUDIENCE} (scope ${ADMIN_SCOPE}) registered in it; to give tenant T an admin, a platform admin creates a client in T with scopes=[${ADMIN_SCOPE}] and resources=[${ADMIN_AUDIENCE}] (\`bulkhead client create --tenant T --name admin --scopes ${ADMIN_SCOPE} --resources ${ADMIN_AUDIENCE}\`).`,
    ].join(' '),
  },
  security: [{ bearer: [] }],
  paths: {
    '/admin/openapi.json': {
      get: { summary: 'This document', security: [], responses: { '200': { description: 'the OpenAPI description of the admin API' } } },
    },
    '/admin/tenants': {
      get: op('List tenants (a tenant admin: its own tenant only)', 'TenantList'),
      post: create(`Create a tenant, its first signing keys and its admin API resource ${ADMIN_AUDIENCE} (scope ${ADMIN_SCOPE}). Platform admins only`, 'CreateTenant', 'Tenant'),
    },
    '/admin/tenants/{tenant}': { get: op('Show a tenant', 'Tenant', { parameters: [tenantParam] }) },
    '/admin/tenants/{tenant}/suspend': { post: op('Suspend a tenant: it issues nothing, its JWKS stays published, its admins are locked out. Platform admins only', 'Tenant', { parameters: [tenantParam] }) },
    '/admin/tenants/{tenant}/resume': { post: op('Resume a suspended tenant. Platform admins only', 'Tenant', { parameters: [tenantParam] }) },
    '/admin/tenants/{tenant}/keys': { get: op("List a tenant's signing keys (no key material)", 'KeyList', { parameters: [tenantParam] }) },
    '/admin/tenants/{tenant}/keys/rotate': {
      post: op('Rotate: the pre-published pending key signs, the active key retires', 'KeyChange', {
        parameters: [tenantParam],
        requestBody: { required: false, ...json('RotateKey') },
      }),
    },
    '/admin/tenants/{tenant}/keys/{kid}/revoke': {
      post: op('Revoke a key: removed from JWKS at once; revoking the active key promotes another', 'KeyChange', {
        parameters: [tenantParam, { name: 'kid', in: 'path', required: true, schema: { type: 'string' } }],
      }),
    },
    '/admin/tenants/{tenant}/resources': {
      get: op('List resources', 'ResourceList', { parameters: [tenantParam] }),
      post: create('Register a resource (RFC 8707 resource indicator) and its scopes', 'CreateResource', 'Resource', [tenantParam]),
    },
    '/admin/tenants/{tenant}/clients': {
      get: op('List clients', 'ClientList', { parameters: [tenantParam] }),
      post: create('Register a client; the secret is returned once', 'CreateClient', 'Client', [tenantParam]),
    },
    '/admin/tenants/{tenant}/clients/{client_id}': {
      get: op('Show a client', 'Client', { parameters: [tenantParam, { name: 'client_id', in: 'path', required: true, schema: { type: 'string' } }] }),
    },
    '/admin/tenants/{tenant}/clients/{client_id}/rotate-secret': {
      post: op('Replace the secret; the new one is returned once', 'Client', { parameters: [tenantParam, { name: 'client_id', in: 'path', required: true, schema: { type: 'string' } }] }),
    },
    '/admin/tenants/{tenant}/clients/{client_id}/disable': {
      post: op('Disable a client', 'Client', { parameters: [tenantParam, { name: 'client_id', in: 'path', required: true, schema: { type: 'string' } }] }),
    },
    '/admin/tenants/{tenant}/agents': {
      post: create(
        'Register an agent (a client of kind agent) in its home tenant; the secret is returned once. Other tenants install it with a delegation',
        'CreateAgent', 'Client', [tenantParam],
      ),
    },
    '/admin/tenants/{tenant}/delegations': {
      get: op("List the tenant's delegations: active, revoked and expired", 'DelegationList', { parameters: [tenantParam] }),
      post: create(
        "Install an agent into the tenant: the scopes and resources it may ever obtain here by token exchange (RFC 8693). One active delegation per agent and tenant (409 otherwise)",
        'GrantDelegation', 'Delegation', [tenantParam],
      ),
    },
    '/admin/tenants/{tenant}/delegations/{delegation}/revoke': {
      post: op('Revoke a delegation: the next exchange by the agent in this tenant fails (409 if already revoked)', 'Delegation', {
        parameters: [tenantParam, pathParam('delegation')],
      }),
    },
    '/admin/tenants/{tenant}/tokens/revoke': {
      post: op(
        'Revoke one access token of the tenant by its jti: inactive at introspection and refused at token exchange at once, with every token exchanged from it. expires_at (the token\'s exp) bounds how long the revocation is kept; without it, the longest lifetime a token can have. Idempotent',
        'TokenRevoked',
        { parameters: [tenantParam], requestBody: { required: true, ...json('RevokeToken') } },
      ),
    },
    '/admin/tenants/{tenant}/clients/{client_id}/revoke-tokens': {
      post: op('Revoke every token the client obtained in this tenant until now, and everything exchanged from them; later tokens are unaffected', 'TokensRevoked', {
        parameters: [tenantParam, pathParam('client_id')],
      }),
    },
    '/admin/tenants/{tenant}/policy': {
      get: op("Show the tenant's Cedar policy (text and version null when it has none: its registrations alone decide)", 'Policy', { parameters: [tenantParam] }),
      put: {
        summary: "Set the tenant's Cedar policy: validated against the policy schema (400 with Cedar's messages and locations otherwise, nothing changes); from then on every issuance and exchange is decided by it, default deny, with the platform baseline always applied. Not for the system tenant (400)",
        parameters: [tenantParam],
        requestBody: { required: true, ...json('SetPolicy') },
        responses: { '200': ok('the policy now in force', 'Policy'), ...errors, '400': ok("invalid_request: the body is invalid, or the policy does not parse or validate (problems: Cedar's messages with line, column and offsets)", 'PolicyError') },
      },
      delete: op('Delete the tenant\'s policy: its registrations alone decide again (deleted: false when it had none)', 'PolicyDeleted', { parameters: [tenantParam] }),
    },
    '/admin/tenants/{tenant}/policy/test': {
      post: {
        summary: "Decide a table of requests with the tenant's policy (or a candidate text in `policy`, stored nowhere), as the token endpoint would: per row the decision, the determining policies and, for a denial, the OAuth error",
        parameters: [tenantParam],
        requestBody: { required: true, ...json('TestPolicy') },
        responses: { '200': ok('one result per request', 'PolicyTestReport'), ...errors, '400': ok('invalid_request: a row or the candidate policy is invalid', 'PolicyError') },
      },
    },
    '/admin/tenants/{tenant}/delegations/{delegation}/revoke-tokens': {
      post: op("Revoke every token the delegation's agent obtained in this tenant until now, and everything exchanged from them; the delegation itself stays as it is", 'DelegationTokensRevoked', {
        parameters: [tenantParam, pathParam('delegation')],
      }),
    },
    '/admin/tenants/{tenant}/audit': {
      get: op("The tenant's audit trail in chain order: the newest `limit` events, or with `after` the events following that seq (to follow the trail)", 'AuditEventList', {
        parameters: [
          tenantParam,
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
          { name: 'after', in: 'query', required: false, schema: { type: 'integer', minimum: 0 } },
        ],
      }),
    },
    '/admin/tenants/{tenant}/audit/verify': {
      get: op("Recompute the tenant's hash chain (hash = SHA-256(prev_hash || canonical event)) from its first event and report the first broken link", 'AuditVerification', { parameters: [tenantParam] }),
    },
    '/admin/tenants/{tenant}/limits': {
      get: op("The tenant's rate limits: its own rate (override and rate in force), the default client rate, and every client override", 'TenantLimits', { parameters: [tenantParam] }),
      put: op(
        "Set the tenant's own rate (requests/s, all its clients together at /token, /introspect and /revoke), or null for RATE_LIMIT_TENANT_RPS. 0 is refused. Platform admins only; effective at once on every replica",
        'TenantLimits',
        { parameters: [tenantParam], requestBody: { required: true, ...json('SetRateLimit') } },
      ),
    },
    '/admin/tenants/{tenant}/clients/{client_id}/limits': {
      put: op(
        "Set one client's rate (requests/s), or null for RATE_LIMIT_CLIENT_RPS. 0 is refused, and so is a rate above the tenant's rate in force (400). Tenant admins may set their clients' rates",
        'ClientLimit',
        { parameters: [tenantParam, pathParam('client_id')], requestBody: { required: true, ...json('SetRateLimit') } },
      ),
    },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    schemas: {
      Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' }, error_description: { type: 'string' } } },
      CreateTenant: schema(createTenantInput),
      CreateResource: schema(createResourceInput),
      CreateClient: schema(createClientInput),
      CreateAgent: schema(createAgentInput),
      GrantDelegation: schema(grantDelegationInput),
      RotateKey: { type: 'object', properties: { alg: { enum: [...KEY_ALGORITHMS] } }, additionalProperties: false },
      Tenant: {
        type: 'object',
        properties: { id: { type: 'string' }, name: { type: 'string' }, status: { enum: ['active', 'suspended'] }, token_ttl: { type: 'integer' }, created_at: { type: 'string' }, updated_at: { type: 'string' } },
      },
      TenantList: { type: 'object', properties: { tenants: { type: 'array', items: { $ref: '#/components/schemas/Tenant' } } } },
      Key: {
        type: 'object',
        properties: {
          kid: { type: 'string' }, alg: { type: 'string' }, status: { enum: ['pending', 'active', 'retired', 'revoked'] }, published: { type: 'boolean' },
          created_at: { type: 'string' }, activated_at: { type: ['string', 'null'] }, retired_at: { type: ['string', 'null'] },
          publish_until: { type: ['string', 'null'] }, revoked_at: { type: ['string', 'null'] },
        },
      },
      KeyList: { type: 'object', properties: { keys: { type: 'array', items: { $ref: '#/components/schemas/Key' } } } },
      KeyChange: { type: 'object', properties: { keys: { type: 'array', items: { $ref: '#/components/schemas/Key' } } } },
      Resource: {
        type: 'object',
        properties: {
          id: { type: 'string' }, uri: { type: 'string' }, scopes: { type: 'array', items: { type: 'string' } }, token_ttl: { type: ['integer', 'null'] },
          require_dpop: { type: 'boolean', description: 'tokens for this resource must be DPoP-bound (RFC 9449)' }, created_at: { type: 'string' },
        },
      },
      ResourceList: { type: 'object', properties: { resources: { type: 'array', items: { $ref: '#/components/schemas/Resource' } } } },
      Client: {
        type: 'object',
        properties: {
          client_id: { type: 'string' }, name: { type: 'string' }, kind: { enum: ['service', 'agent'] }, token_endpoint_auth_method: { type: 'string' },
          scopes: { type: 'array', items: { type: 'string' } }, resources: { type: 'array', items: { type: 'string' } },
          grant_types: { type: 'array', items: { type: 'string' } }, token_ttl: { type: ['integer', 'null'] }, status: { enum: ['active', 'disabled'] },
          created_at: { type: 'string' }, client_secret: { type: 'string', description: 'only in create and rotate-secret responses' },
        },
      },
      ClientList: { type: 'object', properties: { clients: { type: 'array', items: { $ref: '#/components/schemas/Client' } } } },
      Delegation: {
        type: 'object',
        properties: {
          id: { type: 'string' }, client_id: { type: 'string', description: 'the agent' }, agent_tenant: { type: 'string', description: "the agent's home tenant" },
          scopes: { type: 'array', items: { type: 'string' } }, resources: { type: 'array', items: { type: 'string' } },
          token_ttl: { type: ['integer', 'null'] }, expires_at: { type: ['string', 'null'] }, require_dpop: { type: 'boolean' },
          created_by: { type: 'string', description: 'client_id of the admin that granted it' }, created_at: { type: 'string' },
          revoked_at: { type: ['string', 'null'] }, status: { enum: ['active', 'revoked', 'expired'] },
        },
      },
      DelegationList: { type: 'object', properties: { delegations: { type: 'array', items: { $ref: '#/components/schemas/Delegation' } } } },
      RevokeToken: schema(revokeTokenInput),
      SetPolicy: schema(setPolicyInput),
      TestPolicy: schema(testPolicyInput),
      Policy: {
        type: 'object',
        properties: {
          tenant: { type: 'string' }, text: { type: ['string', 'null'] }, version: { type: ['integer', 'null'] },
          policy_ids: { type: 'array', items: { type: 'string' }, description: 'the @id of each policy, else policy<N> by position' },
          updated_at: { type: ['string', 'null'] }, updated_by: { type: ['string', 'null'], description: 'client_id of the admin that set it' },
        },
      },
      PolicyDeleted: { allOf: [{ $ref: '#/components/schemas/Policy' }, { type: 'object', properties: { deleted: { type: 'boolean' } } }] },
      PolicyError: {
        type: 'object',
        required: ['error'],
        properties: {
          error: { type: 'string' }, error_description: { type: 'string' },
          problems: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                policy_id: { type: 'string' }, message: { type: 'string' }, help: { type: 'string' },
                location: { type: 'object', properties: { line: { type: 'integer' }, column: { type: 'integer' }, start: { type: 'integer' }, end: { type: 'integer' } } },
              },
            },
          },
        },
      },
      PolicyTestReport: {
        type: 'object',
        properties: {
          tenant: { type: 'string' }, policy: { enum: ['stored', 'candidate', 'none'] }, version: { type: ['integer', 'null'] }, passed: { type: 'boolean' },
          results: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                row: { type: 'integer' }, name: { type: 'string' }, action: { enum: ['issue', 'exchange'] }, principal: { type: 'string' }, resource: { type: 'string' },
                decision: { enum: ['allow', 'deny'] }, policies: { type: 'array', items: { type: 'string' } },
                error: { enum: ['access_denied', 'invalid_scope', 'invalid_target', 'invalid_request'] }, expect: { enum: ['allow', 'deny'] }, ok: { type: 'boolean' },
              },
            },
          },
        },
      },
      TokenRevoked: { type: 'object', required: ['jti', 'revoked'], properties: { jti: { type: 'string' }, revoked: { const: true } } },
      TokensRevoked: {
        type: 'object',
        required: ['client_id', 'not_before'],
        properties: {
          client_id: { type: 'string' },
          not_before: { type: 'string', format: 'date-time', description: "tokens issued before this instant are inactive (the cutoff is in whole seconds, rounded up)" },
        },
      },
      AuditEvent: {
        type: 'object',
        description: 'One decision or change. Never a token, secret or key.',
        properties: {
          seq: { type: 'integer' }, time: { type: 'string', format: 'date-time' }, tenant_id: { type: 'string' },
          type: { type: 'string', description: 'token.issued, token.exchanged, token.refused, token.revoked, rate_limit.exceeded, client.created, key.rotated, delegation.granted, ...' },
          outcome: { enum: ['success', 'refused', 'failed'] }, reason: { type: ['string', 'null'], description: 'the error code of a refusal' },
          actor: { type: ['string', 'null'] }, client_id: { type: ['string', 'null'] }, subject: { type: ['string', 'null'] }, jti: { type: ['string', 'null'] },
          scopes: { type: 'array', items: { type: 'string' } }, audience: { type: ['string', 'null'] }, request_id: { type: ['string', 'null'] },
          client_ip: { type: ['string', 'null'] }, detail: { type: ['object', 'null'] }, prev_hash: { type: 'string' }, hash: { type: 'string' },
        },
      },
      AuditEventList: { type: 'object', properties: { events: { type: 'array', items: { $ref: '#/components/schemas/AuditEvent' } } } },
      AuditVerification: {
        type: 'object',
        required: ['tenant_id', 'ok', 'events', 'head'],
        properties: {
          tenant_id: { type: 'string' }, ok: { type: 'boolean' }, events: { type: 'integer', description: 'events checked' },
          head: { type: 'object', properties: { seq: { type: 'integer' }, hash: { type: 'string' } } },
          broken: { type: 'object', description: 'the first broken link', properties: { seq: { type: 'integer' }, problem: { type: 'string' } } },
        },
      },
      SetRateLimit: schema(setRateLimitInput),
      ClientLimit: {
        type: 'object',
        required: ['client_id', 'rate_limit_rps', 'effective_rps'],
        properties: {
          client_id: { type: 'string' }, name: { type: 'string' },
          rate_limit_rps: { type: ['integer', 'null'], description: 'the override; null = the default (RATE_LIMIT_CLIENT_RPS)' },
          effective_rps: { type: 'integer', description: 'the rate of the client bucket in force; 0 = unlimited' },
        },
      },
      TenantLimits: {
        type: 'object',
        required: ['tenant_id', 'tenant', 'client_default_rps', 'clients'],
        properties: {
          tenant_id: { type: 'string' },
          tenant: {
            type: 'object',
            properties: {
              rate_limit_rps: { type: ['integer', 'null'], description: 'the override; null = the default (RATE_LIMIT_TENANT_RPS)' },
              effective_rps: { type: 'integer', description: 'the rate of the tenant bucket in force; 0 = unlimited' },
            },
          },
          client_default_rps: { type: 'integer', description: 'RATE_LIMIT_CLIENT_RPS, for clients without an override; 0 = unlimited' },
          clients: { type: 'array', items: { $ref: '#/components/schemas/ClientLimit' }, description: 'clients with an override' },
        },
      },
      DelegationTokensRevoked: {
        type: 'object',
        required: ['delegation', 'client_id', 'not_before'],
        properties: {
          delegation: { type: 'string' },
          client_id: { type: 'string', description: 'the agent' },
          not_before: { type: 'string', format: 'date-time', description: "the agent's tokens in this tenant issued before this instant are inactive" },
        },
      },
    },
  },
} as const;
