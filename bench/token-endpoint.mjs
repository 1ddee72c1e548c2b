// Throughput of Bulkhead's client-credentials grant, measured against a bare oidc-provider 9
// baseline in the same run, on the same machine. Run with `npm run bench` (builds dist/ first).
// See ./README.md for how to read the numbers: compare the ratio, not absolute requests/s.
//
// Each target runs in its own child process (./targets/*.mjs), one after the other, never at the
// same time; autocannon runs here, in the parent. Exit status 1 when any response was not 2xx.
//
// Environment knobs (all optional):
//   BENCH_DURATION     seconds measured per run            (default 10)
//   BENCH_WARMUP       seconds of discarded warm-up         (default 3)
//   BENCH_CONNECTIONS  autocannon connections               (default 16)
//   BENCH_ROUNDS       runs per target; order alternates    (default 2: A B, B A)
//   BENCH_LOG_LEVEL    Bulkhead's LOG_LEVEL                 (default warn)
//   BENCH_PROFILE      1 → CPU-profile the Bulkhead child during the measured window and print
//                      its hotspots (profiling costs throughput: compare ratios of unprofiled runs)
import { fork, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { RESOURCE, SCOPE } from './targets/common.mjs';
import { summarizeProfile, formatHotspots } from './profile-summary.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const int = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
};
const DURATION = int('BENCH_DURATION', 10);
const WARMUP = int('BENCH_WARMUP', 3);
const CONNECTIONS = int('BENCH_CONNECTIONS', 16);
const ROUNDS = int('BENCH_ROUNDS', 2);
const PROFILE = process.env.BENCH_PROFILE === '1';
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'warn';
const RESULTS_DIR = path.join(here, 'results');
const STAMP = new Date().toISOString().replace(/[:.]/g, '-');

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  console.error(`bench: Node ${process.versions.node} cannot run oidc-provider 9; use \`npm run bench\` (Node 22 from node_modules)`);
  process.exit(2);
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => process.exit(130));
}

/** Forks a target and resolves with what it reports once it is ready. */
function startTarget(name, profileFile) {
  const child = fork(path.join(here, 'targets', `${name}.mjs`), [], {
    execPath: process.execPath,
    execArgv: ['--enable-source-maps'],
    env: { ...process.env, BENCH_LOG_LEVEL: LOG_LEVEL, NODE_ENV: 'production', BENCH_PROFILE_FILE: profileFile ?? '' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.add(child);
  const prefix = (stream, out) => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        out.write(`  [${name}] ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
  };
  prefix(child.stdout, process.stderr);
  prefix(child.stderr, process.stderr);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const ready = new Promise((resolve, reject) => {
    child.once('message', (msg) => (msg?.type === 'ready' ? resolve(msg.target) : reject(new Error(`${name}: unexpected message ${JSON.stringify(msg)}`))));
    exited.then(({ code, signal }) => reject(new Error(`${name} exited before it was ready (code ${code}, signal ${signal})`)));
  });
  return {
    ready,
    /** Starts the child's CPU profiler (when it has a profile file) and waits until it runs. */
    async startProfile() {
      const started = new Promise((resolve) => child.once('message', resolve));
      child.send({ type: 'profile-start' });
      const msg = await started;
      if (msg?.error) throw new Error(`${name}: could not start the profiler: ${msg.error}`);
    },
    async stop() {
      if (child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

function requestFor(target) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE, scope: SCOPE }).toString();
  return {
    url: target.tokenUrl,
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(target.clientId)}:${encodeURIComponent(target.clientSecret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body,
  };
}

const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** One request before the load: both targets must answer the same shape with the same kind of token. */
async function probe(name, req) {
  const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${name}: probe token request → ${res.status} ${text}`);
  const { access_token: at, token_type: tokenType, scope } = JSON.parse(text);
  const [h, p] = at.split('.');
  const header = decode(h);
  const claims = decode(p);
  const problems = [];
  if (header.alg !== 'ES256') problems.push(`alg ${header.alg}`);
  if (header.typ !== 'at+jwt') problems.push(`typ ${header.typ}`);
  if ([claims.aud].flat().join() !== RESOURCE) problems.push(`aud ${JSON.stringify(claims.aud)}`);
  if (scope !== SCOPE || claims.scope !== SCOPE) problems.push(`scope ${scope}/${claims.scope}`);
  if (String(tokenType).toLowerCase() !== 'bearer') problems.push(`token_type ${tokenType}`);
  if (problems.length) throw new Error(`${name}: probe token is not the expected shape: ${problems.join(', ')}`);
  return { header, claims, tokenBytes: at.length, responseBytes: Buffer.byteLength(text) };
}

function cannon(req, duration) {
  return autocannon({ ...req, connections: CONNECTIONS, duration, pipelining: 1, timeout: 10 });
}

async function runOne(name, round) {
  process.stderr.write(`▶ ${name} (round ${round}): starting…\n`);
  const t0 = performance.now();
  const profileFile = PROFILE && name === 'bulkhead' ? path.join(RESULTS_DIR, `client-credentials-${STAMP}-${name}-r${round}.cpuprofile`) : undefined;
  if (profileFile) mkdirSync(RESULTS_DIR, { recursive: true });
  const handle = startTarget(name, profileFile);
  const target = await handle.ready;
  const startupMs = Math.round(performance.now() - t0);
  try {
    const req = requestFor(target);
    const shape = await probe(name, req);
    process.stderr.write(`  ready in ${startupMs} ms; warm-up ${WARMUP}s, then ${DURATION}s × ${CONNECTIONS} connections\n`);
    const warm = await cannon(req, WARMUP);
    if (profileFile) await handle.startProfile();
    const r = await cannon(req, DURATION);
    return {
      target: name,
      round,
      notes: target.notes,
      startupMs,
      token: shape,
      warmup: { requests: warm.requests.total, non2xx: warm.non2xx, errors: warm.errors, timeouts: warm.timeouts, statusCodes: warm.statusCodeStats },
      requestsPerSec: { mean: r.requests.mean, stddev: r.requests.stddev, min: r.requests.min, max: r.requests.max },
      requests: r.requests.total,
      latencyMs: { mean: r.latency.mean, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      statusCodes: r.statusCodeStats,
      durationSec: r.duration,
      ...(profileFile ? { profiled: true } : {}),
    };
  } finally {
    const { code, signal } = await handle.stop();
    if (code !== 0) process.stderr.write(`  ${name} exited with code ${code}${signal ? ` (${signal})` : ''}\n`);
    if (profileFile && existsSync(profileFile)) profiles.push(profileFile);
  }
}

/** How busy all CPUs are over `ms` (other processes: nothing of ours runs meanwhile), percent. */
async function cpuBusyPercent(ms) {
  const total = () => os.cpus().reduce((acc, c) => {
    const t = c.times;
    acc.idle += t.idle;
    acc.all += t.user + t.nice + t.sys + t.irq + t.idle;
    return acc;
  }, { idle: 0, all: 0 });
  const a = total();
  await new Promise((r) => setTimeout(r, ms));
  const b = total();
  const all = b.all - a.all;
  return all > 0 ? Math.round((1 - (b.idle - a.idle) / all) * 100) : 0;
}

const profiles = [];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

function aggregate(runs) {
  return {
    requestsPerSec: mean(runs.map((r) => r.requestsPerSec.mean)),
    p50: mean(runs.map((r) => r.latencyMs.p50)),
    p99: mean(runs.map((r) => r.latencyMs.p99)),
    non2xx: runs.reduce((a, r) => a + r.non2xx + r.warmup.non2xx, 0),
    errors: runs.reduce((a, r) => a + r.errors + r.timeouts + r.warmup.errors + r.warmup.timeouts, 0),
  };
}

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r, ri) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ') + (ri === 0 ? `\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : ''))
    .join('\n');
}

function gitCommit() {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: here, encoding: 'utf8' }).trim();
    return dirty ? `${sha}+dirty-src` : sha;
  } catch {
    return undefined;
  }
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
    // Alternate the order (baseline first in odd rounds) so that neither target always runs on a
    // machine that has just been heated by the other.
    const order = round % 2 === 1 ? ['baseline', 'bulkhead'] : ['bulkhead', 'baseline'];
    for (const name of order) runs.push(await runOne(name, round));
  }

  const byTarget = Object.fromEntries(['baseline', 'bulkhead'].map((t) => [t, aggregate(runs.filter((r) => r.target === t))]));
  const ratio = byTarget.bulkhead.requestsPerSec / byTarget.baseline.requestsPerSec;

  const fmt = (n, d = 0) => n.toFixed(d);
  const rows = [['target', 'req/s (mean)', 'p50 ms', 'p99 ms', 'non-2xx', 'errors']];
  for (const [t, a] of Object.entries(byTarget)) rows.push([t, fmt(a.requestsPerSec), fmt(a.p50, 1), fmt(a.p99, 1), a.non2xx, a.errors]);
  console.log('');
  console.log(`client_credentials token endpoint — ${CONNECTIONS} connections, ${DURATION}s per run after ${WARMUP}s warm-up, ${ROUNDS} round(s)`);
  console.log(`Node ${process.versions.node}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), Bulkhead LOG_LEVEL=${LOG_LEVEL}, CPUs ${busyBefore}% busy before the run`);
  console.log('');
  console.log(table(rows));
  console.log('');
  console.log(`ratio bulkhead/baseline (req/s): ${ratio.toFixed(2)}×`);

  let profile;
  if (PROFILE) {
    const file = profiles[0];
    if (file) {
      profile = { file: path.relative(process.cwd(), file), ...summarizeProfile(file) };
      console.log('');
      console.log(`CPU profile of the Bulkhead child, measured window only (profiling slows it down): ${profile.file}`);
      console.log(formatHotspots(profile));
    } else {
      console.log('no CPU profile was written by the Bulkhead child');
    }
  }

  const result = {
    benchmark: 'client-credentials',
    at: new Date(started).toISOString(),
    commit: gitCommit(),
    node: process.versions.node,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: { count: os.cpus().length, model: os.cpus()[0]?.model.trim() },
    cpuBusyBeforePct: busyBefore,
    loadAverage1m: { before: loadBefore, after: os.loadavg()[0] },
    settings: { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP, rounds: ROUNDS, bulkheadLogLevel: LOG_LEVEL, profiled: PROFILE },
    summary: { ...byTarget, ratio },
    runs,
    ...(profile ? { profile } : {}),
    wallSec: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = path.join(RESULTS_DIR, `client-credentials-${STAMP}.json`);
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), out)} (${result.wallSec}s)`);

  const bad = Object.entries(byTarget).filter(([, a]) => a.non2xx > 0 || a.errors > 0);
  if (bad.length) {
    for (const [t, a] of bad) {
      const codes = runs.filter((r) => r.target === t).map((r) => `warm-up ${JSON.stringify(r.warmup.statusCodes)} measured ${JSON.stringify(r.statusCodes)}`).join('; ');
      console.error(`FAIL: ${t} answered ${a.non2xx} non-2xx response(s) and had ${a.errors} error(s)/timeout(s); status codes ${codes}`);
    }
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error('bench failed:', err);
  process.exitCode = 1;
});
