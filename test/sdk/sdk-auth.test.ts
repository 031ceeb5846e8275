import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Corral, isCorralApiError, isNotFound } from '../../src/sdk/index.ts';
import { startTestDaemon } from './sdk-daemon.ts';

const daemon = await startTestDaemon();

test('TCP with an API key: the tenant works in its own sandboxes', async () => {
  const acme = Corral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read', 'sandboxes:write', 'exec', 'files']) });
  assert.equal((await acme.ping()).ok, true, 'ping checks the key and passes');
  const sb = await acme.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  assert.equal((await sb.exec(['echo', 'hi'])).stdout, 'hi\n');
  await sb.files.write('/t.txt', 'mine');
  assert.deepEqual((await acme.sandboxes.list()).map((s) => s.id), [sb.id]);
  await sb.destroy();
});

test('no key, a wrong key, a revoked key: 401 UNAUTHENTICATED as a typed error; ping needs no key', async () => {
  const anonymous = Corral.connect({ url: daemon.url });
  assert.equal((await anonymous.ping()).ok, true);
  for (const client of [anonymous, Corral.connect({ url: daemon.url, apiKey: `crl_${'A'.repeat(43)}` })]) {
    const e = await client.sandboxes.list().catch((err: unknown) => err);
    assert.ok(isCorralApiError(e, 'UNAUTHENTICATED'), String(e));
    assert.equal(e.status, 401);
    assert.match(e.requestId ?? '', /^req_/);
  }
  const gone = daemon.service.keys.create({ tenant: 'acme', scopes: ['admin'] });
  daemon.service.keys.revoke(gone.id);
  const revoked = Corral.connect({ url: daemon.url, apiKey: gone.secret });
  assert.ok(isCorralApiError(await revoked.ping().catch((e: unknown) => e), 'UNAUTHENTICATED'), 'a key sent to ping is checked');
});

test('a key without the scope: 403 PERMISSION_DENIED naming it', async () => {
  const reader = Corral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read']) });
  const e = await reader.sandboxes.create({}).catch((err: unknown) => err);
  assert.ok(isCorralApiError(e, 'PERMISSION_DENIED'), String(e));
  assert.equal(e.status, 403);
  assert.equal(e.details.scope, 'sandboxes:write');
  assert.deepEqual(e.details.granted, ['sandboxes:read']);

  const writer = Corral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read', 'sandboxes:write']) });
  const sb = await writer.sandboxes.create({ backend: 'namespace' });
  assert.ok(isCorralApiError(await sb.exec('true').catch((err: unknown) => err), 'PERMISSION_DENIED'));
  assert.ok(isCorralApiError(await sb.files.list().catch((err: unknown) => err), 'PERMISSION_DENIED'));
  assert.ok(isCorralApiError(await writer.approvals.list().catch((err: unknown) => err), 'PERMISSION_DENIED'));
  await sb.destroy();
});

test("another tenant's sandbox and exec answer 404, never 403; the owner on the socket sees everything", async () => {
  const scopes = ['sandboxes:read', 'sandboxes:write', 'exec', 'files'] as const;
  const acme = Corral.connect({ url: daemon.url, apiKey: daemon.key([...scopes], 'acme') });
  const beta = Corral.connect({ url: daemon.url, apiKey: daemon.key([...scopes], 'beta') });
  const mine = await acme.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const bg = await mine.exec('echo secret', { background: true });
  await bg.wait();

  const e = await beta.sandboxes.get(mine.id).catch((err: unknown) => err);
  assert.ok(isCorralApiError(e, 'SANDBOX_NOT_FOUND'), String(e));
  assert.ok(isNotFound(e));
  assert.ok(isCorralApiError(await beta.execs.get(bg.id).catch((err: unknown) => err), 'EXEC_NOT_FOUND'));
  assert.deepEqual((await beta.sandboxes.list()).map((s) => s.id), []);

  const seenByOwner = await daemon.owner.sandboxes.list();
  assert.ok(seenByOwner.some((s) => s.id === mine.id));
  assert.equal((await (await daemon.owner.execs.get(bg.id)).wait()).exitCode, 0);
  await mine.destroy();
});
