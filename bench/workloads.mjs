// The workloads the token-endpoint benchmark can measure. Each names the target process it runs
// against (./targets/<target>.mjs) and, given what that target reported when it was ready,
// probes it once (the answer must be a 200 with the expected, correctly signed RFC 9068 token)
// and then builds the request autocannon repeats for a window of load.
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { basic, formPost, send } from './harness.mjs';
import { ACCESS_TOKEN_TYPE, AGENT_TENANT, RESOURCE, SCOPE, TENANT, TOKEN_EXCHANGE } from './targets/common.mjs';

const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/**
 * Checks an access token the way a resource server would (signature against the issuer's JWKS,
 * `iss`, `aud`, `typ: at+jwt`, ES256) and that it carries `scope` (absent when undefined) and
 * every claim in `claims`. Returns its header, claims and size; throws naming every problem.
 */
async function checkAccessToken(what, token, { issuer, jwksUrl, audience, scope, claims = {} }) {
  const problems = [];
  const header = decode(token.split('.')[0]);
  if (header.alg !== 'ES256') problems.push(`alg ${header.alg}`);
  if (header.typ !== 'at+jwt') problems.push(`typ ${header.typ}`);
  let payload;
  try {
    ({ payload } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUrl)), { issuer, audience, typ: 'at+jwt', algorithms: ['ES256'] }));
  } catch (err) {
    problems.push(`verification against ${jwksUrl} failed: ${err.code ?? ''} ${err.message}`);
  }
  if (payload) {
    if ([payload.aud].flat().join() !== audience) problems.push(`aud ${JSON.stringify(payload.aud)}`);
    if (payload.scope !== scope) problems.push(`scope ${JSON.stringify(payload.scope)}`);
    for (const [k, v] of Object.entries(claims)) if (payload[k] !== v) problems.push(`${k} ${JSON.stringify(payload[k])} (expected ${JSON.stringify(v)})`);
  }
  if (problems.length) throw new Error(`${what} is not the expected token: ${problems.join(', ')}`);
  return { header, claims: payload, tokenBytes: token.length };
}

function checkResponse(what, body, expected) {
  const problems = Object.entries(expected)
    .filter(([k, v]) => String(body[k]).toLowerCase() !== String(v).toLowerCase())
    .map(([k]) => `${k} ${JSON.stringify(body[k])}`);
  if (problems.length) throw new Error(`${what}: unexpected response: ${problems.join(', ')}`);
}

/** client_credentials for RESOURCE/SCOPE: the same request to either target. */
function clientCredentials(target) {
  return {
    target,
    grant: 'client_credentials',
    async setup(t) {
      const req = formPost(t.tokenUrl, basic(t.clientId, t.clientSecret), { grant_type: 'client_credentials', resource: RESOURCE, scope: SCOPE });
      const { body, bytes } = await send(`${t.name}: probe client_credentials request`, req);
      checkResponse(`${t.name}: probe`, body, { token_type: 'bearer', scope: SCOPE });
      const token = await checkAccessToken(`${t.name}: probe token`, body.access_token, {
        issuer: t.issuer, jwksUrl: t.jwksUrl, audience: RESOURCE, scope: SCOPE, claims: { client_id: t.clientId },
      });
      return { probe: { ...token, responseBytes: bytes }, request: async () => req, stats: () => ({}) };
    },
  };
}

/** How much life the subject token must have left beyond a load window, seconds. */
const CREDENTIAL_MARGIN = 5;

/**
 * RFC 8693 token exchange at tenant TENANT by an agent from AGENT_TENANT: its agent credential
 * (client_credentials at home, no resource) for a token for RESOURCE/SCOPE. Every request of a
 * window exchanges the same credential, as an agent does until it nears expiry; a credential
 * that would expire within a window (plus a margin) is replaced before the window starts.
 */
function tokenExchange(target) {
  return {
    target,
    grant: 'token-exchange',
    async setup(t) {
      const a = t.agent;
      if (!a) throw new Error(`${t.name}: registers no agent, so it cannot be asked for a token exchange`);
      const auth = basic(a.clientId, a.clientSecret);
      let fetched = 0;
      const credential = async () => {
        const { body } = await send(`${t.name}: agent credential request at ${a.homeTokenUrl}`, formPost(a.homeTokenUrl, auth, { grant_type: 'client_credentials' }));
        const { claims } = await checkAccessToken(`${t.name}: agent credential`, body.access_token, {
          issuer: a.homeIssuer, jwksUrl: a.homeJwksUrl, audience: a.homeIssuer, scope: undefined,
          claims: { sub: a.clientId, client_id: a.clientId, tenant_id: AGENT_TENANT },
        });
        fetched++;
        return { token: body.access_token, exp: claims.exp, lifetime: claims.exp - claims.iat, bytes: body.access_token.length };
      };
      const exchange = (subject) => formPost(t.tokenUrl, auth, {
        grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: RESOURCE, scope: SCOPE,
      });

      let cred = await credential();
      const req = exchange(cred.token);
      const { body, bytes } = await send(`${t.name}: probe token exchange`, req);
      checkResponse(`${t.name}: probe`, body, { token_type: 'bearer', issued_token_type: ACCESS_TOKEN_TYPE, scope: SCOPE });
      const token = await checkAccessToken(`${t.name}: probe exchanged token`, body.access_token, {
        issuer: t.issuer, jwksUrl: t.jwksUrl, audience: RESOURCE, scope: SCOPE,
        claims: { sub: a.clientId, client_id: a.clientId, tenant_id: TENANT, act: undefined },
      });
      if (token.claims.exp > cred.exp) throw new Error(`${t.name}: the exchanged token outlives its subject token`);

      return {
        probe: { ...token, responseBytes: bytes, requestBytes: Buffer.byteLength(req.body), subjectToken: { lifetimeSec: cred.lifetime, bytes: cred.bytes } },
        async request(seconds) {
          const left = () => cred.exp - Date.now() / 1000;
          if (left() < seconds + CREDENTIAL_MARGIN) {
            cred = await credential();
            if (left() < seconds + CREDENTIAL_MARGIN) {
              throw new Error(`the agent credential lives ${cred.lifetime} s, less than a ${seconds} s window plus ${CREDENTIAL_MARGIN} s: shorten BENCH_DURATION or BENCH_WARMUP`);
            }
          }
          return exchange(cred.token);
        },
        stats: () => ({ agentCredentialsFetched: fetched }),
      };
    },
  };
}

/** By name, in the default order of a round. */
export const WORKLOADS = {
  baseline: { ...clientCredentials('baseline'), label: 'bare oidc-provider, client_credentials' },
  bulkhead: { ...clientCredentials('bulkhead'), label: 'Bulkhead, client_credentials' },
  // The same request to a tenant with a Cedar policy of its own (targets/common.mjs BENCH_POLICY):
  // the target seeds it when its workload is `policy`.
  policy: { ...clientCredentials('bulkhead'), label: 'Bulkhead, client_credentials, tenant with a Cedar policy' },
  exchange: { ...tokenExchange('bulkhead'), label: 'Bulkhead, token exchange (agent credential → tenant token)' },
  // The same client_credentials request with the broker on PostgreSQL (the scale-out setup)
  // instead of the embedded PGlite: the target seeds a fresh database when its workload is `postgres`.
  postgres: { ...clientCredentials('bulkhead'), label: 'Bulkhead on PostgreSQL, client_credentials' },
};
