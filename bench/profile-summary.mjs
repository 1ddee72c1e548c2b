// Summarises a V8 .cpuprofile (as written by --cpu-prof or the inspector) into hotspots:
// top functions by self time, self time per package, and "on stack" (inclusive) time per package;
// given how many requests the window served, also CPU µs per request, and the per-package
// difference between two profiles (what one workload costs on top of another).
// Usable alone: `node bench/profile-summary.mjs bench/results/<file>.cpuprofile [top] [requests]`.
// A profile samples the main thread only: work on the libuv pool (argon2, WebCrypto) is not in it.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Which package (or part of Bulkhead) a frame belongs to. */
function category(frame) {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('wasm://')) return '(wasm)';
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m ? m[1] : url.slice(5)}`;
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = /\/dist\/([^/]+)\//.exec(url) ?? /\/src\/([^/]+)\//.exec(url);
  if (dist) return `bulkhead:${dist[1] === 'generated' ? 'generated(prisma)' : dist[1]}`;
  if (/\/dist\/[^/]+\.js$/.test(url)) return 'bulkhead';
  if (url.includes('/bench/')) return 'bench';
  return path.basename(url);
}

function where(frame) {
  const { url, lineNumber } = frame;
  if (!url) return '';
  const nm = url.lastIndexOf('/node_modules/');
  const short = nm >= 0 ? url.slice(nm + '/node_modules/'.length) : url.replace(/^file:\/\/.*?\/(dist|src|bench)\//, '$1/');
  return `${short}:${lineNumber + 1}`;
}

/** Roots of almost every stack (microtask and tick queues): meaningless as "on stack" time. */
const SCHEDULING = new Set(['(root)', '(native)', '(program)', 'node:process', 'node:async_hooks']);

export function summarizeProfile(file, top = 15) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0) || 1;
  const idleUs = [...selfUs].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0);
  const busyUs = totalUs - idleUs || 1;

  const fnSelf = new Map();
  const catSelf = new Map();
  const catInclusive = new Map();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    const f = node.callFrame;
    if (f.functionName === '(idle)') continue;
    const key = `${f.functionName || '(anonymous)'}\t${where(f)}\t${category(f)}`;
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + us);
    const cat = category(f);
    catSelf.set(cat, (catSelf.get(cat) ?? 0) + us);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const c = category(byId.get(cur).callFrame);
      if (SCHEDULING.has(c) || seen.has(c)) continue;
      seen.add(c);
      catInclusive.set(c, (catInclusive.get(c) ?? 0) + us);
    }
  }
  const pct = (us) => Math.round((us / busyUs) * 1000) / 10;
  const sorted = (m, n = Infinity) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return {
    wallMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    idlePct: Math.round((idleUs / totalUs) * 1000) / 10,
    functions: sorted(fnSelf, top).map(([k, us]) => {
      const [fn, loc, cat] = k.split('\t');
      return { function: fn, location: loc, package: cat, selfMs: Math.round(us / 1000), selfPct: pct(us) };
    }),
    // Every package (the formatters show the top ones), with µs kept for per-request arithmetic.
    packagesSelf: sorted(catSelf).map(([cat, us]) => ({ package: cat, selfMs: Math.round(us / 1000), selfUs: Math.round(us), selfPct: pct(us) })),
    packagesOnStack: sorted(catInclusive).map(([cat, us]) => ({ package: cat, ms: Math.round(us / 1000), us: Math.round(us), pct: pct(us) })),
  };
}

const usPer = (ms, requests) => (requests ? `${String(Math.round((ms * 1000) / requests)).padStart(5)} µs/req  ` : '');

/** Hotspots as text; with `requests` (served in the profiled window), also CPU µs per request. */
export function formatHotspots(s, { top = 15, requests } = {}) {
  const lines = [`busy ${s.busyMs} ms of ${s.wallMs} ms sampled (idle ${s.idlePct}%); percentages are of busy time`];
  if (requests) lines.push(`${requests} requests in the window: ${Math.round((s.busyMs * 1000) / requests)} µs of main-thread CPU per request`);
  lines.push('', 'top functions by self time:');
  for (const f of s.functions.slice(0, top)) lines.push(`  ${String(f.selfPct).padStart(5)}%  ${usPer(f.selfMs, requests)}${f.function}  (${f.package}; ${f.location})`);
  lines.push('', 'self time by package:');
  for (const p of s.packagesSelf.slice(0, top)) lines.push(`  ${String(p.selfPct).padStart(5)}%  ${usPer(p.selfMs, requests)}${p.package}`);
  lines.push('', 'time with the package anywhere on the stack (inclusive; overlaps):');
  for (const p of s.packagesOnStack.slice(0, top)) lines.push(`  ${String(p.pct).padStart(5)}%  ${usPer(p.ms, requests)}${p.package}`);
  return lines.join('\n');
}

/**
 * Main-thread CPU per request of `b` minus that of `a`, by package (self time): where the extra
 * cost of one workload over another goes. Rows sorted by the difference, largest first.
 */
export function comparePackages(a, requestsA, b, requestsB) {
  const perReq = (s, requests) => new Map(s.packagesSelf.map((p) => [p.package, p.selfUs / requests]));
  const ma = perReq(a, requestsA);
  const mb = perReq(b, requestsB);
  const rows = [...new Set([...ma.keys(), ...mb.keys()])].map((pkg) => {
    const x = ma.get(pkg) ?? 0;
    const y = mb.get(pkg) ?? 0;
    return { package: pkg, aUs: Math.round(x), bUs: Math.round(y), deltaUs: Math.round(y - x) };
  });
  rows.sort((r, s) => s.deltaUs - r.deltaUs);
  const total = (s, requests) => Math.round((s.busyMs * 1000) / requests);
  return { aUs: total(a, requestsA), bUs: total(b, requestsB), rows };
}

export function formatComparison(c, nameA, nameB, top = 12) {
  const w = Math.max(nameA.length, nameB.length, 6);
  const lines = [`main-thread CPU per request: ${nameA} ${c.aUs} µs, ${nameB} ${c.bUs} µs (Δ ${c.bUs - c.aUs >= 0 ? '+' : ''}${c.bUs - c.aUs} µs)`];
  lines.push(`  ${'Δ µs'.padStart(7)}  ${nameA.padStart(w)}  ${nameB.padStart(w)}  package (self time per request)`);
  const shown = c.rows.filter((r) => r.deltaUs !== 0).slice(0, top);
  for (const r of shown) {
    lines.push(`  ${`${r.deltaUs > 0 ? '+' : ''}${r.deltaUs}`.padStart(7)}  ${String(r.aUs).padStart(w)}  ${String(r.bUs).padStart(w)}  ${r.package}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [top] [requests]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 15);
  const requests = process.argv[4] ? Number(process.argv[4]) : undefined;
  console.log(formatHotspots(summarizeProfile(file, top), { top, requests }));
}
