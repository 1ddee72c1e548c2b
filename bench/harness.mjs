// The machinery shared by the benchmark's workloads: settings from the environment, target child
// processes (./targets/*.mjs, protocol in ./targets/common.mjs), autocannon, and output helpers.
import { fork, execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const here = path.dirname(fileURLToPath(import.meta.url));

const int = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
};

export const settings = {
  duration: int('BENCH_DURATION', 10),
  warmup: int('BENCH_WARMUP', 3),
  connections: int('BENCH_CONNECTIONS', 16),
  rounds: int('BENCH_ROUNDS', 2),
  profile: process.env.BENCH_PROFILE === '1',
  logLevel: process.env.BENCH_LOG_LEVEL || 'warn',
};
export const RESULTS_DIR = path.join(here, 'results');
export const STAMP = new Date().toISOString().replace(/[:.]/g, '-');

export function requireNode22() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    console.error(`bench: Node ${process.versions.node} cannot run oidc-provider 9; use \`npm run bench\` (Node 22 from node_modules)`);
    process.exit(2);
  }
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => process.exit(130));
}

/**
 * Forks ./targets/<script>.mjs; its output is prefixed with `label`. `ready` resolves with what
 * the target reports (URLs, credentials) once it can take token requests.
 */
export function startTarget(script, label, profileFile) {
  const child = fork(path.join(here, 'targets', `${script}.mjs`), [], {
    execPath: process.execPath,
    execArgv: ['--enable-source-maps'],
    env: { ...process.env, BENCH_LOG_LEVEL: settings.logLevel, NODE_ENV: 'production', BENCH_PROFILE_FILE: profileFile ?? '', BENCH_WORKLOAD: label },
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
        out.write(`  [${label}] ${buf.slice(0, i)}\n`);
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
    child.once('message', (msg) => (msg?.type === 'ready' ? resolve(msg.target) : reject(new Error(`${label}: unexpected message ${JSON.stringify(msg)}`))));
    exited.then(({ code, signal }) => reject(new Error(`${label} exited before it was ready (code ${code}, signal ${signal})`)));
  });
  /** Sends { type } and resolves with the child's next message of type `reply`. */
  const ask = (type, reply) => new Promise((resolve) => {
    const on = (msg) => {
      if (msg?.type !== reply) return;
      child.off('message', on);
      resolve(msg);
    };
    child.on('message', on);
    child.send({ type });
  });
  return {
    ready,
    /** Starts the child's CPU profiler (when it has a profile file) and waits until it runs. */
    async startProfile() {
      const msg = await ask('profile-start', 'profile-started');
      if (msg.error) throw new Error(`${label}: could not start the profiler: ${msg.error}`);
    },
    /** The child's CPU time (all threads) and event-loop utilisation so far; see usageBetween. */
    usage: () => ask('usage', 'usage'),
    async stop() {
      if (child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** `seconds` of closed-loop load: the same request over and over on every connection. */
export function cannon(req, seconds) {
  return autocannon({ ...req, connections: settings.connections, duration: seconds, pipelining: 1, timeout: 10 });
}

export const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** A form POST as autocannon (and the probes, through fetch) send it. */
export function formPost(url, authorization, params) {
  return {
    url,
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  };
}

/** Sends one request with fetch; the parsed JSON body, or an error naming `what`. */
export async function send(what, req) {
  const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${what} → ${res.status} ${text}`);
  return { body: JSON.parse(text), bytes: Buffer.byteLength(text) };
}

/** How busy all CPUs are over `ms` (other processes: nothing of ours runs meanwhile), percent. */
export async function cpuBusyPercent(ms) {
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

/**
 * What the target spent between two usage() snapshots: CPU ms on all its threads (JS, GC helpers,
 * the libuv pool where argon2 and WebCrypto run) and the share of time its event loop was busy.
 */
export function usageBetween(a, b) {
  const cpuMs = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1000;
  const idle = b.elu.idle - a.elu.idle;
  const active = b.elu.active - a.elu.active;
  return { cpuMs, loopBusy: idle + active > 0 ? active / (idle + active) : 0 };
}

export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** A plain-text table; the first `left` columns are left-aligned, the others right-aligned. */
export function table(rows, left = 1) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r, ri) => r.map((c, i) => (i < left ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ') + (ri === 0 ? `\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : ''))
    .join('\n');
}

export function gitCommit() {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: here, encoding: 'utf8' }).trim();
    return dirty ? `${sha}+dirty-src` : sha;
  } catch {
    return undefined;
  }
}
