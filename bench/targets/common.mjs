// Shared by the benchmark's target processes. Each target runs alone in its own Node process,
// forked by ../harness.mjs with an IPC channel: it serves on 127.0.0.1, sends
// { type: 'ready', target } once it can take token requests, answers { type: 'usage' } with
// { type: 'usage', cpu, elu } (its CPU time on all threads and its event-loop utilisation so far),
// and exits on { type: 'stop' } (gracefully, first writing its CPU profile when one was asked for)
// or when the parent goes away.
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';

/** The client_credentials request both targets answer, so autocannon sends byte-identical bodies to each. */
export const RESOURCE = 'https://api.bench.test/';
export const SCOPE = 'tickets:read';
export const RESOURCE_SCOPES = ['tickets:read', 'tickets:write'];
export const TOKEN_TTL = 300;

/**
 * Token exchange (RFC 8693), Bulkhead only: an agent registered in tenant AGENT_TENANT, installed
 * in TENANT by a delegation for RESOURCE/SCOPE, trades its agent credential at TENANT's token
 * endpoint for a token with the same audience and scope as the client_credentials one.
 */
export const TENANT = 'bench';
export const AGENT_TENANT = 'vendor';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * The tenant policy of the `policy` workload (issue #5): a few policies of the kinds a tenant
 * writes (by principal type, action, resource, scopes, DPoP, TTL, delegation), all evaluated for
 * every request; the bench's client_credentials request is allowed by `services-read`.
 */
export const BENCH_POLICY = `
@id("services-read")
permit(principal is Client, action == Action::"issue", resource == Resource::"${RESOURCE}")
  when { context.scopes.containsAll(["tickets:read"]) || context.scopes.isEmpty() };

@id("agents-through-delegations")
permit(principal is Agent, action == Action::"exchange", resource)
  when { context has delegation && context.actorChain.isEmpty() };

@id("write-needs-dpop")
@error("invalid_scope")
forbid(principal, action, resource) when { context.scopes.contains("tickets:write") && !context.dpop };

@id("short-tokens")
forbid(principal, action, resource) when { context.ttl > 3600 };

@id("no-admin-scopes")
@error("invalid_scope")
forbid(principal, action, resource) when { context.scopes.containsAny(["admin", "tickets:admin"]) };
`;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * CPU profiling of the measured window only (not start-up, seeding or warm-up): the parent sends
 * { type: 'profile-start' } right before the measured run, and the profile is written to
 * $BENCH_PROFILE_FILE (a .cpuprofile, readable by Chrome DevTools) when the target stops.
 */
let profiler;
async function startProfile() {
  if (!process.env.BENCH_PROFILE_FILE || profiler) return;
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 500 });
  await profiler.post('Profiler.start');
}
async function writeProfile() {
  if (!profiler) return;
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(process.env.BENCH_PROFILE_FILE, JSON.stringify(profile));
  profiler.disconnect();
}

/** Reports `ready` to the parent and wires up shutdown; `close` must release everything. */
export function serveUntilStopped(target, close) {
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    try {
      await writeProfile();
      await close();
    } catch (err) {
      console.error(`${target.name}: error while closing:`, err);
      code = 1;
    }
    process.exit(code);
  };
  process.on('message', (msg) => {
    if (msg?.type === 'stop') void stop(0);
    if (msg?.type === 'usage') process.send({ type: 'usage', cpu: process.cpuUsage(), elu: performance.eventLoopUtilization() });
    if (msg?.type === 'profile-start') {
      startProfile().then(
        () => process.send({ type: 'profile-started' }),
        (err) => process.send({ type: 'profile-started', error: String(err) }),
      );
    }
  });
  process.on('disconnect', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  process.send({ type: 'ready', target });
}

export function fail(name, err) {
  console.error(`${name}: failed to start:`, err);
  process.exit(1);
}
