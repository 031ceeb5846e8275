import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { execRecordSchema, execResultSchema, isId, newId, sandboxListSchema, sandboxSchema } from '../../src/protocol/api-schemas.ts';
import { openCorral } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

function setup(bodyLimit?: number) {
  const corral = openCorral();
  corral.vaults.create('src');
  corral.files.write('src', '/a.txt', new TextEncoder().encode('hi\n'));
  const app = createApi({ corral, logger: quiet, version: '0.0.0', ...(bodyLimit ? { bodyLimit } : {}) });
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.request(path, { method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } : { headers }) });
  return { corral, app, call };
}

test('POST /v1/sandboxes → 201 and the sandbox; GET, list with filters, DELETE', async () => {
  const { corral, call } = setup();
  const res = await call('POST', '/v1/sandboxes', { vault: 'src', name: 'web', labels: { team: 'a' }, ttlSeconds: 3600, limits: { pids: 100 } });
  assert.equal(res.status, 201);
  const sb = sandboxSchema.parse(await res.json());
  assert.ok(isId('sbx', sb.id));
  assert.equal(sb.forked, true);
  assert.equal(sb.sourceVault, 'src');
  assert.deepEqual(sb.limits, { pids: 100 });
  assert.deepEqual(sandboxSchema.parse(await (await call('GET', `/v1/sandboxes/${sb.id}`)).json()), sb);
  // Connect by name: any route takes a live sandbox's name in place of its id.
  assert.deepEqual(sandboxSchema.parse(await (await call('GET', '/v1/sandboxes/web')).json()), sb);
  const other = sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { vault: 'src', fork: false, labels: { team: 'b' } })).json());

  const list = async (q: string) => sandboxListSchema.parse(await (await call('GET', `/v1/sandboxes${q}`)).json()).sandboxes.map((s) => s.id);
  assert.deepEqual(await list(''), [sb.id, other.id]);
  assert.deepEqual(await list('?label=team%3Da'), [sb.id]);
  assert.deepEqual(await list('?label=team=b&state=ready'), [other.id]);
  await errorOf(await call('GET', '/v1/sandboxes?state=running'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/sandboxes?label=novalue'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/sandboxes?tenant=x'), 400, 'INVALID_ARGUMENT');

  await errorOf(await call('DELETE', `/v1/sandboxes/${sb.id}?keepFork=maybe`), 400, 'INVALID_ARGUMENT');
  const kept = sandboxSchema.parse(await (await call('DELETE', `/v1/sandboxes/${sb.id}?keepFork=true`)).json());
  assert.equal(kept.state, 'destroyed');
  assert.ok(corral.store.findVault(sb.vault));
  assert.deepEqual(await list(''), [other.id]);
  assert.deepEqual(await list('?state=destroyed'), [sb.id]);
});

test('POST /v1/sandboxes/{id}/exec → the result envelope, kept at GET /v1/execs/{id}', async () => {
  const { corral, call } = setup();
  const sb = sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { vault: 'src', backend: 'namespace', policy: 'permissive', env: { WHO: 'api' } })).json());
  const res = await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo "$WHO" > out.txt; cat a.txt; cat', stdin: Buffer.from('in\n').toString('base64') });
  assert.equal(res.status, 200);
  const r = execResultSchema.parse(await res.json());
  assert.equal(r.status, 'completed', JSON.stringify(r.error));
  assert.equal(r.stdout, 'hi\nin\n');
  assert.deepEqual(r.changes?.added.map((c) => c.path), ['/out.txt']);
  assert.equal(new TextDecoder().decode(corral.files.cat(sb.vault, '/out.txt')), 'api\n');
  assert.equal(corral.files.ls('src', '/').some((f) => f.name === 'out.txt'), false);

  const failed = execResultSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['sh', '-c', 'exit 3'] })).json());
  assert.equal(failed.exitCode, 3);

  const rec = execRecordSchema.parse(await (await call('GET', `/v1/execs/${r.id}`)).json());
  assert.equal(rec.state, 'completed');
  assert.equal(rec.sandbox, sb.id);
  assert.deepEqual(rec.result, r);
  await errorOf(await call('GET', '/v1/execs/exec_0000000000000000'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/execs/${newId('exec')}`), 404, 'EXEC_NOT_FOUND');
  await errorOf(await call('GET', '/v1/execs/exec_..%2F..%2Fetc'), 400, 'INVALID_ARGUMENT');

  // Refused before anything runs.
  const execs = () => corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM execs')!.n;
  const before = execs();
  const both = await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['cat'], stdin: 'eA==', openStdin: true, background: true }), 400, 'INVALID_ARGUMENT');
  assert.match(both.message, /openStdin/);
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['cat'], openStdin: true }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'], tty: true }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: 'true' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'], stdin: 'not base64!' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'], env: { 'A B': 'x' } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/sandboxes/${newId('sbx')}/exec`, { argv: ['true'] }), 404, 'SANDBOX_NOT_FOUND');
  assert.equal(execs(), before);

  await call('DELETE', `/v1/sandboxes/${sb.id}`);
  assert.equal(corral.store.findVault(sb.vault), undefined);
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'] }), 409, 'SANDBOX_STATE');
});

test('hostile input: unknown fields, policy paths, bad ids, huge bodies, wrong methods', async () => {
  const { corral, app, call } = setup(4096);
  const vaults = corral.vaults.list().length;
  await errorOf(await call('POST', '/v1/sandboxes', { vault: 'src', image: 'ubuntu' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { policy: '/etc/passwd' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { policy: './policy.yaml' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { limits: { memoryBytes: -5 } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { ttlSeconds: 0 }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { vault: '../../etc' }), 400, 'INVALID_NAME');
  await errorOf(await call('POST', '/v1/sandboxes', { vault: 'missing' }), 404, 'VAULT_NOT_FOUND');
  await errorOf(await call('POST', '/v1/sandboxes', '{"vault": '), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', '/v1/sandboxes', { labels: { k: 'x'.repeat(8000) } }), 413, 'PAYLOAD_TOO_LARGE');
  const chunked = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(`{"env":{"A":"${'x'.repeat(8000)}"}}`)); c.close(); } });
  await errorOf(await app.request('/v1/sandboxes', { method: 'POST', body: chunked, headers: { 'content-type': 'application/json' }, duplex: 'half' } as RequestInit), 413, 'PAYLOAD_TOO_LARGE');
  assert.equal(corral.vaults.list().length, vaults);
  assert.equal(corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM sandboxes')!.n, 0);

  for (const bad of ['sbx_nope', 'sbx_..%2F..']) {
    await errorOf(await call('GET', `/v1/sandboxes/${bad}`), 400, 'INVALID_ARGUMENT');
    await errorOf(await call('DELETE', `/v1/sandboxes/${bad}`), 400, 'INVALID_ARGUMENT');
  }
  for (const bad of ['%00x', 'a%20b', 'x'.repeat(300)]) await errorOf(await call('GET', `/v1/sandboxes/${bad}`), 400, 'INVALID_NAME');
  // A valid name nobody has is simply not found.
  await errorOf(await call('GET', '/v1/sandboxes/web'), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call('GET', `/v1/sandboxes/${newId('sbx')}`), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call('DELETE', `/v1/sandboxes/${newId('sbx')}`), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call('PUT', `/v1/sandboxes/${newId('sbx')}`), 405, 'METHOD_NOT_ALLOWED');
});

test('the OpenAPI document describes the sandbox and exec routes with their schemas', async () => {
  const { app } = setup();
  const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, any> } };
  for (const p of ['/v1/sandboxes', '/v1/sandboxes/{id}', '/v1/sandboxes/{id}/exec', '/v1/execs/{id}']) assert.ok(doc.paths[p], p);
  assert.deepEqual(Object.keys(doc.paths['/v1/sandboxes']!).sort(), ['get', 'post']);
  assert.deepEqual(Object.keys(doc.paths['/v1/sandboxes/{id}']!).sort(), ['delete', 'get']);
  assert.equal(doc.paths['/v1/sandboxes']!.post.requestBody.content['application/json'].schema.$ref, '#/components/schemas/SandboxCreate');
  assert.equal(doc.paths['/v1/sandboxes/{id}/exec']!.post.responses['200'].content['application/json'].schema.$ref, '#/components/schemas/ExecResult');
  assert.equal(doc.components.schemas.SandboxCreate.additionalProperties, false);
  assert.deepEqual(doc.components.schemas.SandboxCreate.properties.policy.enum.includes('permissive'), true);
});
