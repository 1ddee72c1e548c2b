/**
 * Run in a child process by ./guard.child.test.ts (with tsx): breaking cedar-wasm's instance
 * must never happen in the shared test process. Prints one JSON line.
 *
 * - `guarded`: every crash shape through compilePolicy (the path of `policy set`, `policy test`
 *   and stored policies), then a real decision: the instance must be intact.
 * - `raw`: the review's repro text handed straight to Cedar (past the guard, as a text the guard
 *   missed would be): the engine must fail closed, be replaced, and decide again.
 */
import * as bundled from '@cedar-policy/cedar-wasm/nodejs';
import { compilePolicy, InvalidPolicy } from '../../src/policy/compile.js';
import { preparePolicySet, registrationsPolicySet, type PolicyRequest } from '../../src/policy/evaluate.js';
import { PolicyEngineFailure, policyEngineHealthy, policyEngineStatus, setPolicyEngineLogger, withCedar } from '../../src/policy/engine.js';
import { CRASH_SHAPES } from './crash-shapes.js';

const logged: string[] = [];
setPolicyEngineLogger({ error: (_o: unknown, m?: string) => void logged.push(`error: ${m}`), fatal: (_o: unknown, m?: string) => void logged.push(`fatal: ${m}`) } as never);

const issue: PolicyRequest = {
  tenantId: 'acme',
  action: 'issue',
  principal: { type: 'Client', id: 'svc', tenants: ['acme'] },
  resource: { uri: 'https://tickets.acme.example', tenantId: 'acme' },
  context: { scopes: ['tickets:read'], ttl: 300, dpop: false, actorChain: [], time: 1_800_000_000, ttlCap: 300 },
};
const ALLOW_READ = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };';
const decideNow = () => preparePolicySet(compilePolicy(ALLOW_READ), { preparseAs: 'tenant:acme' }).decide(issue).effect;

const registrations = registrationsPolicySet();
const mode = process.argv[2];
const out: Record<string, unknown> = { mode };
if (mode === 'guarded') {
  out.refused = CRASH_SHAPES.map((s) => {
    try {
      compilePolicy(s.text);
      return { name: s.name, outcome: 'accepted' };
    } catch (err) {
      return { name: s.name, outcome: err instanceof InvalidPolicy ? 'invalid' : `threw ${(err as Error).name}: ${(err as Error).message}` };
    }
  });
} else {
  const deep = `permit(principal, action, resource) when { ${'('.repeat(1000)}true${')'.repeat(1000)} };`;
  try {
    withCedar('parse a policy text', (c) => c.policySetTextToParts(deep));
    out.raw = 'no error';
  } catch (err) {
    out.raw = err instanceof PolicyEngineFailure ? 'PolicyEngineFailure' : String(err);
  }
  // The instance the process started with is broken for good...
  try {
    bundled.checkParsePolicySet({ staticPolicies: 'permit(principal, action, resource);' });
    out.original = 'works';
  } catch (err) {
    out.original = `${(err as Error).name}: ${(err as Error).message}`;
  }
}
// ...but decisions go on, in the instance that replaced it.
out.healthy = policyEngineHealthy();
out.status = policyEngineStatus();
out.decision = decideNow();
out.registrations = registrations.decide(issue).effect;
out.logged = logged;
console.log(JSON.stringify(out));
