import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedTenant, startTestBroker, tokenRequest, type TestBroker } from '../support/broker.js';
import { runBin } from '../support/cli.js';

/** `bulkhead audit tail | verify` as operators run them: real subprocesses against a real broker. */
describe('bulkhead audit (CLI)', { timeout: 60_000 }, () => {
  let b: TestBroker;
  let acme: Awaited<ReturnType<typeof seedTenant>>;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runBin(args, env);
  const issue = (scope = 'tickets:read') => tokenRequest(b, 'acme', { grant_type: 'client_credentials', scope }, { basic: [acme.client_id, acme.client_secret!] });

  beforeAll(async () => {
    b = await startTestBroker('pglite');
    env = { BULKHEAD_URL: b.url, KEYS_DIR: b.keysDir };
    acme = await seedTenant(b, 'acme');
    expect((await issue()).status).toBe(200);
    expect((await issue('tickets:write')).status).toBe(400);
  });
  afterAll(() => b?.close());

  it('tail prints the newest events oldest first, as a table or one JSON document', async () => {
    const all = (await b.admin('GET', '/tenants/acme/audit?limit=1000')).body.events as Array<{ seq: number; type: string }>;
    const r = await cli('audit', 'tail', '--tenant', 'acme', '--limit', '2', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Array<{ seq: number; type: string; outcome: string; reason: string | null; hash: string }>;
    expect(doc.map((e) => e.seq)).toEqual(all.slice(-2).map((e) => e.seq));
    expect(doc.map((e) => [e.type, e.outcome, e.reason])).toEqual([['token.issued', 'success', null], ['token.refused', 'refused', 'invalid_scope']]);
    expect(doc[1]!.hash).toMatch(/^[0-9a-f]{64}$/);

    const human = await cli('audit', 'tail', '--tenant', 'acme');
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SEQ\s+TIME\s+TYPE\s+OUTCOME\s+REASON\s+ACTOR/);
    expect(lines.at(-1)).toMatch(/^\d+\s+\S+\s+token\.refused\s+refused\s+invalid_scope\s+/);
    expect(lines).toHaveLength(Math.min(20, all.length) + 1);
  });

  it('verify: exit 0 on an intact chain; exit 1 naming the first broken link once a row is edited', async () => {
    const ok = await cli('audit', 'verify', '--tenant', 'acme');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^audit trail of acme verified: \d+ event\(s\), chain intact up to event \d+/);
    const okJson = JSON.parse((await cli('audit', 'verify', '--tenant', 'acme', '--json')).stdout);
    expect(okJson).toMatchObject({ tenant_id: 'acme', ok: true });

    await b.broker.services.db.driver.exec(`ALTER TABLE "AuditEvent" DISABLE TRIGGER USER;
      UPDATE "AuditEvent" SET "scopes" = ARRAY['tickets:write'] WHERE "tenantId" = 'acme' AND "type" = 'token.issued';
      ALTER TABLE "AuditEvent" ENABLE TRIGGER USER;`);
    const seq = (await b.admin('GET', '/tenants/acme/audit?limit=1000')).body.events.find((e: { type: string }) => e.type === 'token.issued').seq;
    const broken = await cli('audit', 'verify', '--tenant', 'acme');
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`BROKEN at event ${seq}: event ${seq} was altered`);
    expect(broken.stderr).toBe(`bulkhead: audit trail of acme is broken at event ${seq}\n`);
    const brokenJson = await cli('audit', 'verify', '--tenant', 'acme', '--json');
    expect(brokenJson.code).toBe(1);
    expect(JSON.parse(brokenJson.stdout)).toMatchObject({ ok: false, broken: { seq } });
  });

  it('tail --follow prints events as they happen, one JSON document per line with --json', async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    let buffered = '';
    let issued = false;
    const done = runBin(['audit', 'tail', '--tenant', 'acme', '--limit', '1', '--follow', '--interval', '100', '--json'], env, {
      signal: controller.signal,
      onStdout(chunk) {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        seen.push(...lines);
      },
    });
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(cond()).toBe(true);
    };
    await until(() => seen.length >= 1);
    const res = await issue();
    issued = res.status === 200;
    const jti = JSON.parse(Buffer.from(res.body.access_token.split('.')[1], 'base64url').toString()).jti;
    await until(() => seen.some((l) => l.includes(jti)));
    controller.abort();
    await done;
    expect(issued).toBe(true);
    const events = seen.map((l) => JSON.parse(l) as { seq: number; jti: string | null });
    expect(events.at(-1)).toMatchObject({ jti, seq: events[0]!.seq + 1 });
  });

  it('usage errors exit 2; an unknown tenant exits 1', async () => {
    for (const args of [['audit', 'tail'], ['audit', 'tail', '--tenant', 'acme', '--limit', '0'], ['audit', 'tail', '--tenant', 'acme', '--limit', '5000'], ['audit', 'verify']]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
    }
    for (const sub of ['tail', 'verify']) {
      const r = await cli('audit', sub, '--tenant', 'nope', '--json');
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('bulkhead: tenant nope not found\n');
    }
  });
});
