import { z } from 'zod';
import { pino } from 'pino';
import type { PrismaClient, TenantPolicy } from '../generated/prisma/client.js';
import { forTenant } from '../db/tenant-scope.js';
import type { ChangeEvents } from '../shared/changes.js';
import { InvalidInput } from '../shared/errors.js';
import { SYSTEM_TENANT } from '../shared/ids.js';
import { parseInput } from '../shared/validate.js';
import { Lru } from '../shared/lru.js';
import { compilePolicy, InvalidPolicy, MAX_POLICY_BYTES, type CompiledPolicy, type DenialError } from './compile.js';
import { PolicyEngineFailure, setPolicyEngineLogger, type EngineLogger } from './engine.js';
import { preparePolicySet, registrationsPolicySet, requestProblem, type PolicyRequest, type PreparedPolicySet } from './evaluate.js';

/** A tenant's policy as the admin API shows it (snake_case). No policy: `text` and `version` are null. */
export interface PolicyView {
  tenant: string;
  text: string | null;
  version: number | null;
  /** The ids of its policies, in text order. */
  policy_ids: string[];
  updated_at: string | null;
  updated_by: string | null;
}

/** Largest admin request body the policy routes read: a policy text JSON-escaped, or a test table. */
export const POLICY_BODY_BYTES = 8 * MAX_POLICY_BYTES;

export const setPolicyInput = z.object({
  policy: z.string().min(1, 'the Cedar policy text is required'),
}).strict();

const principalInput = z.object({
  type: z.enum(['Client', 'Agent']).default('Client'),
  id: z.string().min(1).max(64),
  /** The tenant it is registered in (an agent: its home); default the tenant tested. */
  tenant: z.string().min(1).max(63).optional(),
}).strict();

const resourceInput = z.union([
  z.string().min(1).max(2048).transform((uri) => ({ uri, tenant: undefined })),
  z.object({ uri: z.string().min(1).max(2048), tenant: z.string().min(1).max(63).optional() }).strict(),
]);

const epochSeconds = z.number().int().min(0).max(253_402_300_799);

/** One row of a `policy test` table (README "Policy"). */
export const policyTestRow = z.object({
  name: z.string().max(200).optional(),
  principal: principalInput,
  action: z.enum(['issue', 'exchange']),
  resource: resourceInput,
  context: z.object({
    scopes: z.array(z.string().max(128)).max(100).default([]),
    ttl: z.number().int().min(0).max(1_000_000_000).optional(),
    dpop: z.boolean().default(false),
    actorChain: z.array(z.string().max(256)).max(32).default([]),
    time: epochSeconds.optional(),
    subject: z.string().max(256).optional(),
    delegation: z.string().max(64).optional(),
  }).strict().default({ scopes: [], dpop: false, actorChain: [] }),
  expect: z.enum(['allow', 'deny']).optional(),
}).strict();

export const testPolicyInput = z.object({
  requests: z.array(policyTestRow).min(1).max(1000),
  /** A candidate policy text to test instead of the stored one (nothing is stored). */
  policy: z.string().min(1).optional(),
}).strict();

export interface PolicyTestResult {
  row: number;
  name?: string;
  action: string;
  principal: string;
  resource: string;
  decision: 'allow' | 'deny';
  /** The determining policies. */
  policies: string[];
  /** For a denial: the OAuth error the token endpoint would answer with. */
  error?: DenialError;
  expect?: 'allow' | 'deny';
  /** Present with `expect`: whether the decision is the one expected. */
  ok?: boolean;
}

export interface PolicyTestReport {
  tenant: string;
  /** Which policy decided: the stored one, the candidate in the request, or none (registrations). */
  policy: 'stored' | 'candidate' | 'none';
  version: number | null;
  results: PolicyTestResult[];
  /** Every row with an `expect` got it. */
  passed: boolean;
}

function toView(tenantId: string, row: TenantPolicy | null, compiled?: CompiledPolicy): PolicyView {
  if (!row) return { tenant: tenantId, text: null, version: null, policy_ids: [], updated_at: null, updated_by: null };
  let ids: string[] = [];
  try {
    ids = Object.keys((compiled ?? compilePolicy(row.text)).policies);
  } catch {
    /* a stored text this version no longer accepts: shown as it is */
  }
  return { tenant: tenantId, text: row.text, version: row.version, policy_ids: ids, updated_at: row.updatedAt.toISOString(), updated_by: row.updatedBy };
}

/** Refuses every request: what a stored policy this version cannot read decides (fail closed). */
const refuseAll = (version: number): PreparedPolicySet => ({
  tenantPolicy: true,
  version,
  decide: () => ({ effect: 'deny', policyIds: [], error: 'access_denied' }),
});

export interface PolicyServiceDeps {
  prisma: PrismaClient;
  changes: ChangeEvents;
  /** The tenant's cap on token lifetime, for `policy test` rows (the baseline's ttl-cap). */
  tenantTtl(tenantId: string): Promise<number>;
  /** Re-read a cached policy at least this often, so replicas converge without a shared bus, ms. */
  maxAgeMs?: number;
  cacheSize?: number;
  /** Where refused stored policies and policy-engine failures are logged (./engine.ts); default pino at `error`. */
  logger?: EngineLogger;
}

/**
 * Tenant policies (issue #5, DESIGN.md "Policy contract"): storage of each tenant's Cedar text,
 * and for the token path a per-tenant cache of the prepared policy set (parsed once into
 * cedar-wasm), dropped when the policy changes here or on another replica (the change bus).
 */
export function createPolicyService(deps: PolicyServiceDeps) {
  const maxAgeMs = deps.maxAgeMs ?? 30_000;
  const cache = new Lru<string, { set: PreparedPolicySet; loadedAt: number }>(deps.cacheSize ?? 1000);
  const loading = new Map<string, Promise<PreparedPolicySet>>();
  const generation = new Map<string, number>();
  if (deps.logger) setPolicyEngineLogger(deps.logger);
  const logger = deps.logger ?? pino({ level: 'error' });
  const registrations = registrationsPolicySet();

  deps.changes.onPolicyChanged((tenantId) => {
    generation.set(tenantId, (generation.get(tenantId) ?? 0) + 1);
    cache.delete(tenantId);
    loading.delete(tenantId);
  });

  const db = (tenantId: string) => forTenant(deps.prisma, tenantId);

  async function load(tenantId: string): Promise<PreparedPolicySet> {
    const gen = generation.get(tenantId) ?? 0;
    const row = await db(tenantId).tenantPolicy.findUnique({ where: { tenantId } });
    const current = (generation.get(tenantId) ?? 0) === gen;
    let set: PreparedPolicySet;
    if (!row) {
      set = registrations;
    } else {
      try {
        const compiled = compilePolicy(row.text);
        // Only the load that is still current may take the tenant's slot in cedar-wasm's store.
        set = preparePolicySet(compiled, { version: row.version, ...(current ? { preparseAs: `tenant:${tenantId}` } : {}) });
      } catch (err) {
        if (err instanceof PolicyEngineFailure) {
          // The engine is broken (logged in ./engine.ts): refuse, and read the policy again next time.
          return refuseAll(row.version);
        }
        if (!(err instanceof InvalidPolicy)) throw err;
        // Stored before this version refused it (e.g. before ./guard.ts): never handed to Cedar, the tenant fails closed.
        logger.error({ tenant: tenantId, version: row.version, err: { message: err.message } }, 'stored tenant policy refused: every token of the tenant is denied until the policy is replaced or deleted');
        set = refuseAll(row.version);
      }
    }
    if (current) cache.set(tenantId, { set, loadedAt: Date.now() });
    return set;
  }

  return {
    /**
     * The prepared policy set the token path decides with: cached, re-read after a change
     * (change bus) or `maxAgeMs`. A database failure propagates (the grant answers 503): a
     * policy that cannot be read never counts as no policy.
     */
    async forTenant(tenantId: string): Promise<PreparedPolicySet> {
      const hit = cache.get(tenantId);
      if (hit && Date.now() - hit.loadedAt < maxAgeMs) return hit.set;
      let pending = loading.get(tenantId);
      if (!pending) {
        const p = load(tenantId).finally(() => {
          if (loading.get(tenantId) === p) loading.delete(tenantId);
        });
        loading.set(tenantId, (pending = p));
      }
      return pending;
    },

    async get(tenantId: string): Promise<PolicyView> {
      return toView(tenantId, await db(tenantId).tenantPolicy.findUnique({ where: { tenantId } }));
    },

    /** Replaces the tenant's policy with a validated one (400 with Cedar's problems otherwise; nothing changes then). */
    async set(tenantId: string, raw: unknown, updatedBy: string): Promise<PolicyView> {
      if (tenantId === SYSTEM_TENANT) {
        // The platform's own tenant: its admin tokens must always be obtainable.
        throw new InvalidInput('the system tenant carries no policy: its admin tokens must always be obtainable');
      }
      const input = parseInput(setPolicyInput, raw);
      const compiled = compilePolicy(input.policy);
      const now = new Date();
      const row = await db(tenantId).tenantPolicy.upsert({
        where: { tenantId },
        create: { tenantId, text: compiled.text, version: 1, updatedAt: now, updatedBy },
        update: { text: compiled.text, version: { increment: 1 }, updatedAt: now, updatedBy },
      });
      deps.changes.policyChanged(tenantId);
      return toView(tenantId, row, compiled);
    },

    /** Removes the tenant's policy: its registrations alone decide again. */
    async remove(tenantId: string): Promise<PolicyView & { deleted: boolean }> {
      const { count } = await db(tenantId).tenantPolicy.deleteMany({ where: { tenantId } });
      if (count > 0) deps.changes.policyChanged(tenantId);
      return { ...toView(tenantId, null), deleted: count > 0 };
    },

    /**
     * Decides a table of requests with the tenant's stored policy, or with a candidate text
     * (validated like `set`, stored nowhere), exactly as the token path would decide them.
     */
    async test(tenantId: string, raw: unknown): Promise<PolicyTestReport> {
      const input = parseInput(testPolicyInput, raw);
      let compiled: CompiledPolicy | undefined;
      let version: number | null = null;
      let which: PolicyTestReport['policy'];
      if (input.policy !== undefined) {
        compiled = compilePolicy(input.policy);
        which = 'candidate';
      } else {
        const row = await db(tenantId).tenantPolicy.findUnique({ where: { tenantId } });
        compiled = row ? compilePolicy(row.text) : undefined;
        version = row?.version ?? null;
        which = row ? 'stored' : 'none';
      }
      const ttlCap = await deps.tenantTtl(tenantId);
      // Parsed once for the whole table (one shared slot: from here on nothing awaits, so no
      // other table can take it before every row is decided).
      const set = preparePolicySet(compiled, { version, preparseAs: 'bulkhead:policy-test' });
      const now = Math.floor(Date.now() / 1000);
      const problems: string[] = [];
      const results = input.requests.map((r, row): PolicyTestResult => {
        const home = r.principal.tenant ?? tenantId;
        const req: PolicyRequest = {
          tenantId,
          action: r.action,
          // An agent in a table is one installed here: its parents are its home and this tenant.
          principal: { type: r.principal.type, id: r.principal.id, tenants: r.principal.type === 'Agent' ? [home, tenantId] : [home] },
          resource: { uri: r.resource.uri, tenantId: r.resource.tenant ?? tenantId },
          context: {
            scopes: r.context.scopes,
            ttl: r.context.ttl ?? ttlCap,
            dpop: r.context.dpop,
            actorChain: r.context.actorChain,
            time: r.context.time ?? now,
            ttlCap,
            ...(r.action === 'exchange' ? { subject: r.context.subject ?? r.principal.id } : {}),
            ...(r.context.delegation !== undefined ? { delegation: r.context.delegation } : {}),
          },
        };
        const problem = r.action === 'issue' && (r.context.subject !== undefined || r.context.delegation !== undefined)
          ? 'context.subject and context.delegation are only for action exchange'
          : requestProblem(req);
        if (problem) problems.push(`requests.${row}: ${problem}`);
        const d = set.decide(req);
        return {
          row,
          ...(r.name !== undefined ? { name: r.name } : {}),
          action: r.action,
          principal: `${r.principal.type}::${JSON.stringify(r.principal.id)}`,
          resource: r.resource.uri,
          decision: d.effect,
          policies: d.policyIds,
          ...(d.error ? { error: d.error } : {}),
          ...(r.expect ? { expect: r.expect, ok: r.expect === d.effect } : {}),
        };
      });
      if (problems.length > 0) throw new InvalidInput(problems.join('; '));
      return { tenant: tenantId, policy: which, version: set.version, results, passed: results.every((r) => r.ok !== false) };
    },
  };
}

export type PolicyService = ReturnType<typeof createPolicyService>;
