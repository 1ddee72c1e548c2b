import { afterEach, describe, expect, it, vi } from 'vitest';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { compilePolicy } from '../../src/policy/compile.js';
import { preparePolicySet, registrationsPolicySet, requestProblem, type PolicyRequest } from '../../src/policy/evaluate.js';
import {
  PolicyEngineFailure,
  policyEngineHealthy,
  policyEngineStatus,
  replacePolicyEngineForTests,
  setPolicyEngineLogger,
  type CedarEngine,
} from '../../src/policy/engine.js';

/**
 * Defence in depth (src/policy/engine.ts): when a Cedar call throws (the cedar-wasm instance
 * broke), decisions refuse with access_denied and never allow, the failure is logged at fatal,
 * policyEngineHealthy() turns false for /readyz, and the instance is replaced by a fresh one.
 * Simulated here with an injected engine that throws as a broken instance does; the real
 * instance is broken only in a child process (./guard.child.test.ts).
 */
const issue = (scopes = ['tickets:read']): PolicyRequest => ({
  tenantId: 'acme',
  action: 'issue',
  principal: { type: 'Client', id: 'svc', tenants: ['acme'] },
  resource: { uri: 'https://tickets.acme.example', tenantId: 'acme' },
  context: { scopes, ttl: 300, dpop: false, actorChain: [], time: 1_800_000_000, ttlCap: 300 },
});

const oob = () => {
  throw new WebAssembly.RuntimeError('memory access out of bounds');
};
/** What a broken instance answers to every call. */
const broken: CedarEngine = {
  policySetTextToParts: oob,
  policyToJson: oob,
  validate: oob,
  preparsePolicySet: oob,
  preparseSchema: oob,
  statefulIsAuthorized: oob,
  isAuthorized: oob,
  checkParsePolicySet: oob,
};
/** A real instance whose decisions break it the first time (as an evaluation-time overflow would). */
function breaksOnDecide(): CedarEngine {
  let calls = 0;
  return {
    ...cedar,
    isAuthorized: (...a: Parameters<typeof cedar.isAuthorized>) => (calls++ === 0 ? oob() : cedar.isAuthorized(...a)),
    statefulIsAuthorized: (...a: Parameters<typeof cedar.statefulIsAuthorized>) => (calls++ === 0 ? oob() : cedar.statefulIsAuthorized(...a)),
  };
}

// Prepared at startup in the broker (createPolicyService): here too, before any engine is broken.
registrationsPolicySet();
const log = { error: vi.fn(), fatal: vi.fn() };
setPolicyEngineLogger(log);
let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
  vi.clearAllMocks();
});

const ALLOW_READ = 'permit(principal, action, resource) unless { context.scopes.contains("tickets:write") };';

describe('policy engine broken: fail closed, visibly', () => {
  it('a decision refuses with access_denied (never allow), the failure is logged at fatal, and the engine reports unhealthy', () => {
    const set = preparePolicySet(compilePolicy(ALLOW_READ));
    expect(set.decide(issue()).effect).toBe('allow');
    expect(policyEngineHealthy()).toBe(true);

    restore = replacePolicyEngineForTests({ engine: broken, load: () => broken, reloadIntervalMs: 0 });
    expect(set.decide(issue())).toEqual({ effect: 'deny', policyIds: [], error: 'access_denied' });
    expect(policyEngineHealthy()).toBe(false);
    expect(policyEngineStatus()).toMatchObject({ healthy: false, lastFailure: 'RuntimeError: memory access out of bounds' });
    expect(log.fatal).toHaveBeenCalledWith(expect.objectContaining({ call: 'decide', err: { message: 'RuntimeError: memory access out of bounds' } }), expect.stringMatching(/fail closed/));
    // The replacement failed too: still unhealthy, still refusing, and said so.
    expect(log.fatal).toHaveBeenCalledWith(expect.anything(), expect.stringMatching(/could not load a fresh cedar-wasm instance/));
    expect(set.decide(issue()).effect).toBe('deny');
    // Tenants without a policy (the registrations set) are refused too, not allowed by default.
    expect(registrationsPolicySet().decide(issue()).effect).toBe('deny');
    expect(policyEngineHealthy()).toBe(false);
  });

  it('setting or testing a policy on a broken engine is a 503, not a 500 and not an acceptance', () => {
    restore = replacePolicyEngineForTests({ engine: broken, load: () => broken, reloadIntervalMs: 0 });
    const e = (() => {
      try {
        compilePolicy(ALLOW_READ);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(PolicyEngineFailure);
    expect((e as PolicyEngineFailure).status).toBe(503);
    expect((e as PolicyEngineFailure).toJSON()).toEqual({ error: 'temporarily_unavailable', error_description: 'the policy engine is temporarily unavailable; try again later' });
    expect(() => requestProblem(issue())).toThrow(PolicyEngineFailure);
  });

  it('a broken instance is replaced by a fresh one: healthy again, preparsed sets preparsed again, decisions right', () => {
    const set = preparePolicySet(compilePolicy(ALLOW_READ), { preparseAs: 'test:engine-reload' });
    expect(set.decide(issue()).effect).toBe('allow');
    const before = policyEngineStatus();
    // The default loader: a fresh cedar-wasm module, so a new WebAssembly instance.
    restore = replacePolicyEngineForTests({ engine: broken, reloadIntervalMs: 0 });
    expect(registrationsPolicySet().decide(issue()).effect).toBe('deny'); // the call that found it broken
    expect(log.fatal).toHaveBeenCalledTimes(1);
    expect(log.error).toHaveBeenCalledWith(expect.anything(), expect.stringMatching(/replaced the broken cedar-wasm instance/));
    expect(policyEngineHealthy()).toBe(true);
    expect(policyEngineStatus().reloads).toBe(before.reloads + 1);
    // The new instance has none of the old one's preparsed sets: they are preparsed again.
    expect(set.decide(issue()).effect).toBe('allow');
    expect(set.decide(issue(['tickets:write']))).toMatchObject({ effect: 'deny', error: 'invalid_scope' });
    expect(registrationsPolicySet().decide(issue()).effect).toBe('allow');
    expect(requestProblem(issue())).toBeUndefined();
    expect(compilePolicy(ALLOW_READ).policies).toHaveProperty('policy0');
  });

  it('replacements are rate-limited: within the interval the engine stays broken and refuses', () => {
    restore = replacePolicyEngineForTests({ engine: broken, reloadIntervalMs: 60_000 });
    const set = preparePolicySet(undefined);
    expect(set.decide(issue()).effect).toBe('deny'); // breaks, and the first replacement attempt runs
    expect(policyEngineHealthy()).toBe(true);
    replacePolicyEngineForTests({ engine: broken }); // broken again at once
    expect(set.decide(issue()).effect).toBe('deny');
    expect(policyEngineHealthy()).toBe(false);
    expect(set.decide(issue()).effect).toBe('deny');
    expect(log.fatal).toHaveBeenCalledTimes(2);
  });

  it('the policy set whose decision broke the engine is never handed to Cedar again; other sets decide as before', () => {
    const poison = preparePolicySet(compilePolicy(ALLOW_READ));
    const other = preparePolicySet(compilePolicy(ALLOW_READ));
    restore = replacePolicyEngineForTests({ engine: breaksOnDecide(), load: () => cedar, reloadIntervalMs: 0 });
    expect(poison.decide(issue()).effect).toBe('deny');
    expect(policyEngineHealthy()).toBe(true); // replaced
    expect(poison.decide(issue()).effect).toBe('deny'); // quarantined, though it would now be allowed
    expect(other.decide(issue()).effect).toBe('allow');
  });

  it('the set of tenants without a policy (and of system) is never quarantined: it decides again once the engine is replaced', () => {
    restore = replacePolicyEngineForTests({ engine: breaksOnDecide(), load: () => cedar, reloadIntervalMs: 0 });
    expect(registrationsPolicySet().decide(issue()).effect).toBe('deny');
    expect(registrationsPolicySet().decide(issue()).effect).toBe('allow');
  });

  it('control: a working engine never reports unhealthy', () => {
    expect(policyEngineHealthy()).toBe(true);
    expect(preparePolicySet(compilePolicy(ALLOW_READ)).decide(issue()).effect).toBe('allow');
    expect(log.fatal).not.toHaveBeenCalled();
  });
});
