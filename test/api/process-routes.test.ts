import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { processInfoSchema, processListSchema, sandboxSchema } from '../../src/protocol/api-schemas.ts';
import { openCorral } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

function setup() {
  const corral = openCorral();
  corral.vaults.create('src');
  const app = createApi({ corral, logger: quiet, version: '0.0.0' });
  const call = (method: string, path: string, body?: unknown) =>
    app.request(path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  const sandbox = async () => sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { vault: 'src', backend: 'namespace', policy: 'permissive' })).json());
  return { corral, call, sandbox };
}

async function until(check: () => Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 30));
  }
}

test('processes: start, list, logs (tail, streams, timestamps, json, follow), stop with TERM then KILL, remove', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox();
  const res = await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: 'web', shell: 'for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; trap "" TERM; while :; do sleep 0.05; done' });
  assert.equal(res.status, 201);
  const p = processInfoSchema.parse(await res.json());
  assert.equal(p.state, 'running');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: 'web', argv: ['true'] }), 409, 'CONFLICT');
  await errorOf(await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: '../x', argv: ['true'] }), 400, 'INVALID_NAME');
  const logs = async (q: string) => (await call('GET', `/v1/processes/${p.id}/logs${q}`)).text();
  await until(async () => (await logs('')).includes('err5'));
  assert.equal(await logs('?stderr=false'), 'out1\nout2\nout3\nout4\nout5\n');
  assert.equal(await logs('?stdout=false&tail=2'), 'err4\nerr5\n');
  assert.match(await logs('?tail=1&timestamps=true&stdout=false'), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z err5\n$/);
  const json = (await logs('?format=json&tail=1&stdout=false')).trim();
  assert.equal(JSON.parse(json).stream, 'stderr');
  assert.equal(await logs(`?since=${Math.floor(Date.now() / 1000) + 3600}`), '');
  assert.equal(await logs('?until=2000-01-01T00:00:00Z'), '');
  await errorOf(await call('GET', `/v1/processes/${p.id}/logs?tail=-1`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/processes/${p.id}/logs?since=yesterday`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/processes/${p.id}/logs?stdout=false&stderr=false`), 400, 'INVALID_ARGUMENT');

  assert.deepEqual(processListSchema.parse(await (await call('GET', `/v1/sandboxes/${sb.id}/processes?running=true`)).json()).processes.map((x) => x.id), [p.id]);
  await errorOf(await call('DELETE', `/v1/processes/${p.id}`), 409, 'EXEC_STATE');
  // The command ignores TERM: stop waits its timeout, then KILLs.
  const followed = Promise.resolve(call('GET', `/v1/processes/${p.id}/logs?follow=true&stderr=false&tail=1`)).then((r) => r.text());
  const stopped = processInfoSchema.parse(await (await call('POST', `/v1/processes/${p.id}/stop`, { timeoutMs: 300 })).json());
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.pid, null);
  assert.equal(await followed, 'out5\n', 'follow ends when the process does');
  const removed = processInfoSchema.parse(await (await call('DELETE', `/v1/processes/${p.id}`)).json());
  assert.equal(removed.state, 'removed');
  await errorOf(await call('GET', `/v1/processes/${p.id}`), 404, 'PROCESS_NOT_FOUND');
  // The name is free again.
  const again = processInfoSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: 'web', argv: ['true'] })).json());
  await until(async () => processInfoSchema.parse(await (await call('GET', `/v1/processes/${again.id}`)).json()).state === 'exited');
});

test('restart on-failure up to the limit, with every run in the logs; exit 0 is not restarted; force remove', async () => {
  const { call, sandbox, corral } = setup();
  const sb = await sandbox();
  const flaky = processInfoSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: 'flaky', shell: 'echo run; exit 3', restart: 'on-failure', maxRestarts: 2 })).json());
  await until(async () => processInfoSchema.parse(await (await call('GET', `/v1/processes/${flaky.id}`)).json()).state === 'failed');
  const done = processInfoSchema.parse(await (await call('GET', `/v1/processes/${flaky.id}`)).json());
  assert.equal(done.restarts, 2);
  assert.equal(done.exitCode, 3);
  assert.equal(await (await call('GET', `/v1/processes/${flaky.id}/logs`)).text(), 'run\nrun\nrun\n');

  const ok = processInfoSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: 'ok', argv: ['true'], restart: 'on-failure' })).json());
  await until(async () => processInfoSchema.parse(await (await call('GET', `/v1/processes/${ok.id}`)).json()).state === 'exited');
  assert.equal(processInfoSchema.parse(await (await call('GET', `/v1/processes/${ok.id}`)).json()).restarts, 0);

  const svc = processInfoSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/processes`, { name: 'svc', argv: ['sleep', '60'], restart: 'on-failure' })).json());
  const killed = await call('POST', `/v1/processes/${svc.id}/kill`, { signal: 'KILL' });
  assert.equal(killed.status, 200);
  await until(async () => processInfoSchema.parse(await (await call('GET', `/v1/processes/${svc.id}`)).json()).restarts === 1);
  const forced = processInfoSchema.parse(await (await call('DELETE', `/v1/processes/${svc.id}?force=true`)).json());
  assert.equal(forced.state, 'removed');
  assert.equal(corral.execs.running(sb.id).length, 0);
});
