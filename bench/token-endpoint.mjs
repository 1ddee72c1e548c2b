// Token endpoint throughput, measured in one run on one machine: Bulkhead's client_credentials
// against a bare oidc-provider 9 baseline, Bulkhead's token exchange (RFC 8693, an agent
// trading its agent credential) against Bulkhead's client_credentials, and client_credentials
// at a tenant with a Cedar policy (issue #5) against the same without one. Run with `npm run bench`
// (builds dist/ first). See ./README.md for how to read the numbers: compare the ratios, not
// absolute requests/s.
//
// Each run starts its target in a fresh child process (./targets/*.mjs), one run after the other,
// never two at the same time; autocannon runs here, in the parent. The workloads themselves are
// in ./workloads.mjs, the process and load machinery in ./harness.mjs. Exit status 1 when any
// response was not 2xx.
//
// Environment knobs (all optional):
//   BENCH_WORKLOADS    comma-separated, from baseline,bulkhead,policy,exchange,postgres (default: all five)
//   BENCH_POSTGRES_URL the PostgreSQL server of the `postgres` workload (default the local one)
//   BENCH_DURATION     seconds measured per run            (default 10)
//   BENCH_WARMUP       seconds of discarded warm-up         (default 3)
//   BENCH_CONNECTIONS  autocannon connections               (default 16)
//   BENCH_ROUNDS       runs per workload; order reverses every round (default 2)
//   BENCH_LOG_LEVEL    Bulkhead's LOG_LEVEL                 (default warn)
//   BENCH_PROFILE      1 → CPU-profile the Bulkhead children during their measured windows and
//                      print their hotspots (profiling costs throughput: take ratios from
//                      unprofiled runs)
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  settings, RESULTS_DIR, STAMP, requireNode22, startTarget, cannon, usageBetween, cpuBusyPercent, mean, table, gitCommit,
} from './harness.mjs';
import { WORKLOADS } from './workloads.mjs';
import { summarizeProfile, formatHotspots, comparePackages, formatComparison } from './profile-summary.mjs';

const { duration: DURATION, warmup: WARMUP, connections: CONNECTIONS, rounds: ROUNDS, profile: PROFILE, logLevel: LOG_LEVEL } = settings;

/** The ratios reported when both workloads ran: [numerator, denominator, what it answers, goal]. */
const RATIOS = [
  ['bulkhead', 'baseline', 'client_credentials: Bulkhead vs bare oidc-provider'],
  ['exchange', 'bulkhead', 'Bulkhead: token exchange vs client_credentials', 0.7],
  ['policy', 'bulkhead', 'Bulkhead client_credentials: tenant with a Cedar policy vs without', 0.9],
  ['postgres', 'bulkhead', 'Bulkhead client_credentials: on PostgreSQL vs on the embedded PGlite'],
  ['postgres', 'baseline', 'client_credentials: Bulkhead on PostgreSQL vs bare oidc-provider'],
];

requireNode22();
const SELECTED = (process.env.BENCH_WORKLOADS || Object.keys(WORKLOADS).join(',')).split(',').map((s) => s.trim()).filter(Boolean);
for (const name of SELECTED) {
  if (!WORKLOADS[name]) {
    console.error(`bench: unknown workload ${name} in BENCH_WORKLOADS (known: ${Object.keys(WORKLOADS).join(', ')})`);
    process.exit(2);
  }
}

/** The first profile written per workload, with the requests its window served. */
const profiles = new Map();

async function runOne(name, round) {
  const w = WORKLOADS[name];
  process.stderr.write(`▶ ${name} (${w.label}; round ${round}): starting…\n`);
  const t0 = performance.now();
  const profileFile = PROFILE && w.target === 'bulkhead' ? path.join(RESULTS_DIR, `token-endpoint-${STAMP}-${name}-r${round}.cpuprofile`) : undefined;
  if (profileFile) mkdirSync(RESULTS_DIR, { recursive: true });
  const handle = startTarget(w.target, name, profileFile);
  const target = await handle.ready;
  const startupMs = Math.round(performance.now() - t0);
  let result;
  try {
    const run = await w.setup(target);
    process.stderr.write(`  ready in ${startupMs} ms, probe ok; warm-up ${WARMUP}s, then ${DURATION}s × ${CONNECTIONS} connections\n`);
    const warm = await cannon(await run.request(WARMUP), WARMUP);
    const req = await run.request(DURATION);
    if (profileFile) await handle.startProfile();
    const before = await handle.usage();
    const r = await cannon(req, DURATION);
    const used = usageBetween(before, await handle.usage());
    result = {
      workload: name,
      target: w.target,
      grant: w.grant,
      round,
      notes: target.notes,
      startupMs,
      probe: run.probe,
      ...run.stats(),
      warmup: { requests: warm.requests.total, non2xx: warm.non2xx, errors: warm.errors, timeouts: warm.timeouts, statusCodes: warm.statusCodeStats },
      requestsPerSec: { mean: r.requests.mean, stddev: r.requests.stddev, min: r.requests.min, max: r.requests.max },
      requests: r.requests.total,
      latencyMs: { mean: r.latency.mean, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      statusCodes: r.statusCodeStats,
      durationSec: r.duration,
      // The target process over the measured window: CPU on all its threads per request served,
      // and how busy its event loop was (near 1: the main thread is the bottleneck).
      server: { cpuMs: Math.round(used.cpuMs), cpuUsPerRequest: r.requests.total ? Math.round((used.cpuMs * 1000) / r.requests.total) : null, loopBusy: Math.round(used.loopBusy * 100) / 100 },
      ...(profileFile ? { profiled: true } : {}),
    };
    return result;
  } finally {
    const { code, signal } = await handle.stop();
    if (code !== 0) process.stderr.write(`  ${name} exited with code ${code}${signal ? ` (${signal})` : ''}\n`);
    if (profileFile && existsSync(profileFile) && result && !profiles.has(name)) profiles.set(name, { file: profileFile, requests: result.requests });
  }
}

function aggregate(runs) {
  return {
    requestsPerSec: mean(runs.map((r) => r.requestsPerSec.mean)),
    p50: mean(runs.map((r) => r.latencyMs.p50)),
    p99: mean(runs.map((r) => r.latencyMs.p99)),
    non2xx: runs.reduce((a, r) => a + r.non2xx + r.warmup.non2xx, 0),
    errors: runs.reduce((a, r) => a + r.errors + r.timeouts + r.warmup.errors + r.warmup.timeouts, 0),
    serverCpuUsPerRequest: mean(runs.map((r) => r.server.cpuUsPerRequest ?? 0)),
    serverLoopBusy: mean(runs.map((r) => r.server.loopBusy)),
  };
}

async function main() {
  const started = Date.now();
  const loadBefore = os.loadavg()[0];
  const busyBefore = await cpuBusyPercent(1000);
  if (busyBefore > 25) {
    process.stderr.write(`⚠ the CPUs were ${busyBefore}% busy before the run started: something else is running, expect noisy numbers\n`);
  }
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Odd rounds run the workloads in the given order, even rounds in reverse, so that no
    // workload always runs right after another has heated the machine, and over an even number
    // of rounds every workload has the same mean position.
    const order = round % 2 === 1 ? SELECTED : [...SELECTED].reverse();
    for (const name of order) runs.push(await runOne(name, round));
  }

  const byWorkload = Object.fromEntries(SELECTED.map((n) => [n, aggregate(runs.filter((r) => r.workload === n))]));
  const ratios = RATIOS.filter(([a, b]) => byWorkload[a] && byWorkload[b]).map(([a, b, what, goal]) => ({
    ratio: `${a}/${b}`, what, value: byWorkload[a].requestsPerSec / byWorkload[b].requestsPerSec, ...(goal ? { goal } : {}),
  }));

  const fmt = (n, d = 0) => n.toFixed(d);
  const rows = [['workload', 'target', 'grant', 'req/s (mean)', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'server CPU µs/req', 'loop busy']];
  for (const [n, a] of Object.entries(byWorkload)) {
    rows.push([n, WORKLOADS[n].target, WORKLOADS[n].grant, fmt(a.requestsPerSec), fmt(a.p50, 1), fmt(a.p99, 1), a.non2xx, a.errors, fmt(a.serverCpuUsPerRequest), fmt(a.serverLoopBusy, 2)]);
  }
  console.log('');
  console.log(`token endpoint — ${CONNECTIONS} connections, ${DURATION}s per run after ${WARMUP}s warm-up, ${ROUNDS} round(s)`);
  console.log(`Node ${process.versions.node}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), Bulkhead LOG_LEVEL=${LOG_LEVEL}, CPUs ${busyBefore}% busy before the run`);
  console.log('');
  console.log(table(rows, 3));
  console.log('');
  for (const r of ratios) {
    const goal = r.goal ? ` (goal ≥ ${r.goal.toFixed(2)}×: ${r.value >= r.goal ? 'met' : 'NOT met'})` : '';
    console.log(`ratio ${r.ratio} (req/s): ${r.value.toFixed(2)}× — ${r.what}${goal}`);
  }

  const profileSummaries = {};
  if (PROFILE) {
    for (const [name, { file, requests }] of profiles) {
      const s = summarizeProfile(file);
      profileSummaries[name] = { file: path.relative(process.cwd(), file), requests, ...s };
      console.log('');
      console.log(`CPU profile of the ${name} child, measured window only (profiling slows it down): ${profileSummaries[name].file}`);
      console.log(formatHotspots(s, { requests }));
    }
    const [a, b] = ['bulkhead', 'exchange'].map((n) => profileSummaries[n]);
    if (a && b) {
      const c = comparePackages(a, a.requests, b, b.requests);
      profileSummaries.comparison = { a: 'bulkhead', b: 'exchange', ...c };
      console.log('');
      console.log('what a token exchange costs on top of a client_credentials token (main thread, profiled runs):');
      console.log(formatComparison(c, 'bulkhead', 'exchange'));
    }
    if (profiles.size === 0) console.log('no CPU profile was written by a Bulkhead child');
  }

  const result = {
    benchmark: 'token-endpoint',
    at: new Date(started).toISOString(),
    commit: gitCommit(),
    node: process.versions.node,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: { count: os.cpus().length, model: os.cpus()[0]?.model.trim() },
    cpuBusyBeforePct: busyBefore,
    loadAverage1m: { before: loadBefore, after: os.loadavg()[0] },
    settings: { workloads: SELECTED, connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP, rounds: ROUNDS, bulkheadLogLevel: LOG_LEVEL, profiled: PROFILE },
    summary: { ...byWorkload, ratios },
    runs,
    ...(PROFILE ? { profiles: profileSummaries } : {}),
    wallSec: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = path.join(RESULTS_DIR, `token-endpoint-${STAMP}.json`);
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), out)} (${result.wallSec}s)`);

  const bad = Object.entries(byWorkload).filter(([, a]) => a.non2xx > 0 || a.errors > 0);
  if (bad.length) {
    for (const [n, a] of bad) {
      const codes = runs.filter((r) => r.workload === n).map((r) => `warm-up ${JSON.stringify(r.warmup.statusCodes)} measured ${JSON.stringify(r.statusCodes)}`).join('; ');
      console.error(`FAIL: ${n} answered ${a.non2xx} non-2xx response(s) and had ${a.errors} error(s)/timeout(s); status codes ${codes}`);
    }
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error('bench failed:', err);
  process.exitCode = 1;
});
