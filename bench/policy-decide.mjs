// What one policy decision costs on the token path, in-process (no HTTP): the prepared policy
// set's `decide` for a tenant without a policy (baseline + registrations) and for the `policy`
// workload's tenant policy (./targets/common.mjs BENCH_POLICY), preparsed once into cedar-wasm
// (what the token path uses) and, for comparison, parsed on every decision. Run with
// `npm run bench:policy` (builds dist/ first); compare the µs with the server CPU µs/req that
// `npm run bench` reports for a whole token request.
import { performance } from 'node:perf_hooks';
import { compilePolicy } from '../dist/policy/compile.js';
import { preparePolicySet, registrationsPolicySet } from '../dist/policy/evaluate.js';
import { BENCH_POLICY, RESOURCE, SCOPE, TENANT } from './targets/common.mjs';

const N = Number(process.env.BENCH_DECISIONS || 20_000);
const request = {
  tenantId: TENANT,
  action: 'issue',
  principal: { type: 'Client', id: 'cl_benchservice00', tenants: [TENANT] },
  resource: { uri: RESOURCE, tenantId: TENANT },
  context: { scopes: [SCOPE], ttl: 300, dpop: false, actorChain: [], time: Math.floor(Date.now() / 1000), ttlCap: 300 },
};

function measure(label, set) {
  const d = set.decide(request);
  if (d.effect !== 'allow') throw new Error(`${label}: expected allow, got ${JSON.stringify(d)}`);
  for (let i = 0; i < 2_000; i++) set.decide(request);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) set.decide(request);
  const us = ((performance.now() - t0) * 1000) / N;
  console.log(`${label.padEnd(58)} ${us.toFixed(1).padStart(7)} µs/decision  (${d.policyIds.join(', ')})`);
}

const t0 = performance.now();
const compiled = compilePolicy(BENCH_POLICY);
console.log(`compile (parse + validate) BENCH_POLICY: ${(performance.now() - t0).toFixed(1)} ms, ${Object.keys(compiled.policies).length} policies`);
measure('no tenant policy (baseline + registrations), preparsed', registrationsPolicySet());
measure('tenant policy BENCH_POLICY + baseline, preparsed', preparePolicySet(compiled, { preparseAs: 'bench:tenant' }));
measure('tenant policy BENCH_POLICY + baseline, parsed per decision', preparePolicySet(compiled));
