// Summarises a V8 .cpuprofile (as written by --cpu-prof or the inspector) into hotspots:
// top functions by self time, self time per package, and "on stack" (inclusive) time per package.
// Usable alone: `node bench/profile-summary.mjs bench/results/<file>.cpuprofile`.
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
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    wallMs: Math.round(totalUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    idlePct: Math.round((idleUs / totalUs) * 1000) / 10,
    functions: sorted(fnSelf).map(([k, us]) => {
      const [fn, loc, cat] = k.split('\t');
      return { function: fn, location: loc, package: cat, selfMs: Math.round(us / 1000), selfPct: pct(us) };
    }),
    packagesSelf: sorted(catSelf).map(([cat, us]) => ({ package: cat, selfMs: Math.round(us / 1000), selfPct: pct(us) })),
    packagesOnStack: sorted(catInclusive).map(([cat, us]) => ({ package: cat, ms: Math.round(us / 1000), pct: pct(us) })),
  };
}

export function formatHotspots(s) {
  const lines = [`busy ${s.busyMs} ms of ${s.wallMs} ms sampled (idle ${s.idlePct}%); percentages are of busy time`];
  lines.push('', 'top functions by self time:');
  for (const f of s.functions) lines.push(`  ${String(f.selfPct).padStart(5)}%  ${f.function}  (${f.package}; ${f.location})`);
  lines.push('', 'self time by package:');
  for (const p of s.packagesSelf) lines.push(`  ${String(p.selfPct).padStart(5)}%  ${p.package}`);
  lines.push('', 'time with the package anywhere on the stack (inclusive; overlaps):');
  for (const p of s.packagesOnStack) lines.push(`  ${String(p.pct).padStart(5)}%  ${p.package}`);
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(formatHotspots(summarizeProfile(file, Number(process.argv[3] ?? 15))));
}
