// The lifecycle routes in-process: extend, pause and resume around a real running exec, checkpoints
// (save, list, restore, delete), hostile input, scopes and tenants over TCP with API keys, and the
// OpenAPI document.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApi } from '../../src/api/api-app.ts';
import {
  checkpointListSchema,
  checkpointRestoreResultSchema,
  checkpointSchema,
  execRecordSchema,
  sandboxSchema,
} from '../../src/protocol/api-schemas.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import type { Corral } from '../../src/services/corral.ts';
import { openCorral } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

const LOOP = 'while :; do echo x; sleep 0.01; done';

function setup(withAuth = false) {
  const corral = openCorral();
  const app = createApi({ corral, logger: quiet, version: '0.0.0', ...(withAuth ? { auth: { keys: corral.keys } } : {}) });
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}, env?: { transport: 'tcp' | 'unix' }) =>
    app.request(path, { method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } : { headers }) }, env);
  const sandbox = async (spec: object = {}) => sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { backend: 'namespace', policy: 'permissive', ...spec })).json());
  return { corral, app, call, sandbox };
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(10);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('pause and resume over the API: a running exec stops producing output, execs are 409 while paused, it continues after', async () => {
  const { corral, call, sandbox } = setup();
  const sb = await sandbox();
  const started = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: LOOP, background: true })).json());
  const bytes = () => corral.execs.output.ends(started.id).stdout;
  await until('output', async () => (await bytes()) > 0);

  // No body, an empty body and {} are all accepted.
  const paused = await call('POST', `/v1/sandboxes/${sb.id}/pause`);
  assert.equal(paused.status, 200);
  assert.equal(sandboxSchema.parse(await paused.json()).state, 'paused');
  assert.equal((await call('POST', `/v1/sandboxes/${sb.id}/pause`, {})).status, 200, 'idempotent');
  assert.equal(sandboxSchema.parse(await (await call('GET', `/v1/sandboxes/${sb.id}`)).json()).state, 'paused');
  const refused = await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'] }), 409, 'SANDBOX_STATE');
  assert.equal(refused.details.state, 'paused');
  // Bytes in flight at the pause may still land; after that nothing grows.
  await sleep(150);
  const frozen = await bytes();
  await sleep(400);
  assert.equal(await bytes(), frozen);

  const resumed = await call('POST', `/v1/sandboxes/${sb.id}/resume`, '', { 'content-length': '0' });
  assert.equal(resumed.status, 200);
  assert.equal(sandboxSchema.parse(await resumed.json()).state, 'ready');
  await until('output to grow again', async () => (await bytes()) > frozen);
  const ran = await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['echo', 'ok'] });
  assert.equal(ran.status, 200);

  // Destroying a paused sandbox ends its exec at once.
  await call('POST', `/v1/sandboxes/${sb.id}/pause`);
  const destroyed = await call('DELETE', `/v1/sandboxes/${sb.id}`);
  assert.equal(sandboxSchema.parse(await destroyed.json()).state, 'destroyed');
  assert.notEqual(execRecordSchema.parse(await (await call('GET', `/v1/execs/${started.id}`)).json()).state, 'running');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/resume`), 409, 'SANDBOX_STATE');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/pause`), 409, 'SANDBOX_STATE');
});

test('extend and idleTimeoutSeconds over the API', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox({ idleTimeoutSeconds: 300 });
  assert.equal(sb.idleTimeoutSeconds, 300);
  assert.equal(sb.expiresAt, null);
  const before = Date.now();
  const res = await call('POST', `/v1/sandboxes/${sb.id}/extend`, { ttlSeconds: 600 });
  assert.equal(res.status, 200);
  const extended = sandboxSchema.parse(await res.json());
  const expires = Date.parse(extended.expiresAt!);
  assert.ok(expires >= before + 600_000 && expires <= Date.now() + 600_000);
  for (const body of [{}, { ttlSeconds: 0 }, { ttlSeconds: 604_801 }, { ttlSeconds: 1.5 }, { ttlSeconds: '60' }, { ttlSeconds: 60, extra: 1 }])
    await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/extend`, body), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/extend`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { idleTimeoutSeconds: 0 }), 400, 'INVALID_ARGUMENT');
});

test('checkpoints over the API: save (named or not), list, restore (409 while an exec runs unless cancelExecs), delete', async () => {
  const { corral, call, sandbox } = setup();
  const sb = await sandbox();
  corral.files.write(sb.vault, '/a.txt', new TextEncoder().encode('one\n'));
  const saved = await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { name: 'base', message: 'the start' });
  assert.equal(saved.status, 201);
  const base = checkpointSchema.parse(await saved.json());
  assert.equal(base.name, 'base');
  const unnamed = checkpointSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`)).json());
  assert.match(unnamed.name, /^cp-/);
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { name: 'base' }), 409, 'CHECKPOINT_EXISTS');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { name: '-x' }), 400, 'INVALID_NAME');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { name: 'x', message: 'bell\u0007' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { nam: 'x' }), 400, 'INVALID_ARGUMENT');

  assert.equal((await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo two > a.txt' })).status, 200);
  const list = checkpointListSchema.parse(await (await call('GET', `/v1/sandboxes/${sb.id}/checkpoints`)).json());
  assert.deepEqual(list.checkpoints.map((c) => c.name), ['base', unnamed.name]);

  const running = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['sleep', '30'], background: true })).json());
  const busy = await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/base/restore`), 409, 'SANDBOX_STATE');
  assert.deepEqual(busy.details.execs, [running.id]);
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/nope/restore`, { cancelExecs: true }), 404, 'CHECKPOINT_NOT_FOUND');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/HEAD~1/restore`, { cancelExecs: true }), 400, 'INVALID_NAME');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/base/restore`, { cancel: true }), 400, 'INVALID_ARGUMENT');
  assert.equal(execRecordSchema.parse(await (await call('GET', `/v1/execs/${running.id}`)).json()).state, 'running');
  const res = await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/base/restore`, { cancelExecs: true });
  assert.equal(res.status, 200);
  const restored = checkpointRestoreResultSchema.parse(await res.json());
  assert.deepEqual(restored.cancelled, [running.id]);
  assert.equal(restored.restored, base.commit);
  const cat = await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['cat', 'a.txt'] })).json();
  assert.equal((cat as { stdout: string }).stdout, 'one\n');

  assert.equal(checkpointSchema.parse(await (await call('DELETE', `/v1/sandboxes/${sb.id}/checkpoints/base`)).json()).name, 'base');
  await errorOf(await call('DELETE', `/v1/sandboxes/${sb.id}/checkpoints/base`), 404, 'CHECKPOINT_NOT_FOUND');
  await errorOf(await call('GET', '/v1/sandboxes/sbx_nope/checkpoints'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/sandboxes/${sb.id}/checkpoints?x=1`), 400, 'INVALID_ARGUMENT');
});

test('scopes and tenants over TCP: reads need sandboxes:read, changes sandboxes:write; another tenant\'s sandbox is 404', async () => {
  const { corral, call } = setup(true);
  const tcp = { transport: 'tcp' as const };
  const key = (c: Corral, scopes: KeyScope[], tenant: string) => ({ authorization: `Bearer ${c.keys.create({ tenant, scopes }).secret}` });
  const writer = key(corral, ['sandboxes:read', 'sandboxes:write'], 'acme');
  const reader = key(corral, ['sandboxes:read'], 'acme');
  const other = key(corral, ['admin'], 'beta');
  const sb = sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', {}, writer, tcp)).json());

  const changes: [string, string, unknown?][] = [
    ['POST', `/v1/sandboxes/${sb.id}/pause`],
    ['POST', `/v1/sandboxes/${sb.id}/resume`],
    ['POST', `/v1/sandboxes/${sb.id}/extend`, { ttlSeconds: 60 }],
    ['POST', `/v1/sandboxes/${sb.id}/checkpoints`, {}],
    ['POST', `/v1/sandboxes/${sb.id}/checkpoints/x/restore`, {}],
    ['DELETE', `/v1/sandboxes/${sb.id}/checkpoints/x`],
  ];
  for (const [method, path, body] of changes) {
    const e = await errorOf(await call(method, path, body, reader, tcp), 403, 'PERMISSION_DENIED');
    assert.equal(e.details.scope, 'sandboxes:write');
    await errorOf(await call(method, path, body, other, tcp), 404, 'SANDBOX_NOT_FOUND');
  }
  await errorOf(await call('GET', `/v1/sandboxes/${sb.id}/checkpoints`, undefined, other, tcp), 404, 'SANDBOX_NOT_FOUND');
  const listed = await call('GET', `/v1/sandboxes/${sb.id}/checkpoints`, undefined, reader, tcp);
  assert.equal(listed.status, 200, await listed.clone().text());
  assert.equal((await call('POST', `/v1/sandboxes/${sb.id}/pause`, undefined, writer, tcp)).status, 200);
  assert.equal((await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { name: 'x' }, writer, tcp)).status, 201);
  assert.equal((await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/x/restore`, undefined, writer, tcp)).status, 200);
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/pause`, undefined, {}, tcp), 401, 'UNAUTHENTICATED');
});

test('the OpenAPI document describes the lifecycle and event routes', async () => {
  const { call } = setup();
  const doc = (await (await call('GET', '/openapi.json')).json()) as { paths: Record<string, Record<string, { operationId: string }>>; components: { schemas: Record<string, unknown> } };
  const ops = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
  for (const op of ['extendSandbox', 'pauseSandbox', 'resumeSandbox', 'saveCheckpoint', 'listCheckpoints', 'deleteCheckpoint', 'restoreCheckpoint', 'streamEvents', 'streamSandboxEvents']) assert.ok(ops.includes(op), op);
  for (const name of ['SandboxExtend', 'Checkpoint', 'CheckpointList', 'CheckpointRestore', 'CheckpointRestoreResult', 'CorralEvent', 'EventReset']) assert.ok(doc.components.schemas[name], name);
  assert.ok(doc.paths['/v1/sandboxes/{id}/checkpoints/{name}/restore']?.post);
});
