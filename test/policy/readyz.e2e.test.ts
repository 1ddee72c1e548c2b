import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replacePolicyEngineForTests, type CedarEngine } from '../../src/policy/engine.js';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';

/**
 * A broken policy engine refuses every token (fail closed, see ./engine.test.ts); /readyz says so,
 * so that a load balancer or orchestrator stops sending this replica requests. Simulated with an
 * injected engine that throws as a broken cedar-wasm instance does, and a loader that cannot
 * replace it; the real instance is only ever broken in a child process (./guard.child.test.ts).
 */
describe('readiness follows the policy engine (pglite)', () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let restore: (() => void) | undefined;
  const oob = () => {
    throw new WebAssembly.RuntimeError('memory access out of bounds');
  };
  const broken = Object.fromEntries(
    ['policySetTextToParts', 'policyToJson', 'validate', 'preparsePolicySet', 'preparseSchema', 'statefulIsAuthorized', 'isAuthorized', 'checkParsePolicySet'].map((k) => [k, oob]),
  ) as unknown as CedarEngine;

  beforeAll(async () => {
    b = await startTestBroker('pglite', { RATE_LIMIT_CLIENT_RPS: '0', RATE_LIMIT_TENANT_RPS: '0' });
    acme = await seedTenant(b, 'acme');
  });
  afterAll(async () => {
    restore?.();
    await b?.close();
  });

  it('ready while the engine decides; 503 with no token issued once it breaks; ready again once replaced', async () => {
    const ready = async () => {
      const r = await fetch(`${b.url}/readyz`);
      return { status: r.status, body: await r.json() };
    };
    const cc = () => tokenRequest(b, 'acme', { grant_type: 'client_credentials' }, { basic: [acme.client_id, acme.client_secret!] });
    expect(await ready()).toEqual({ status: 200, body: { status: 'ready' } });
    expect((await cc()).status).toBe(200);

    restore = replacePolicyEngineForTests({ engine: broken, load: () => broken, reloadIntervalMs: 0 });
    const refused = await cc();
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('access_denied');
    expect(refused.body.access_token).toBeUndefined();
    expect(await ready()).toEqual({ status: 503, body: { status: 'policy engine unavailable' } });
    expect((await fetch(`${b.url}/healthz`)).status).toBe(200);

    restore();
    restore = undefined;
    expect(await ready()).toEqual({ status: 200, body: { status: 'ready' } });
    expect((await cc()).status).toBe(200);
  });
});
