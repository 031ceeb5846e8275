import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { createApi, type ApiDeps } from '../../src/api/api-app.ts';
import { readJson } from '../../src/api/api-middleware.ts';
import type { ApiLogger, BackendsView } from '../../src/api/api-types.ts';
import { capabilitiesListSchema, errorEnvelopeSchema, healthSchema, isId, pingSchema, systemSchema } from '../../src/protocol/api-schemas.ts';
import { CorralError } from '../../src/protocol/errors.ts';
import type { Capabilities } from '../../src/runtime/backend.ts';
import { openCorral } from '../helpers.ts';

interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg?: string;
}

function memoryLogger(): ApiLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, ...(msg !== undefined ? { msg } : {}) });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

function caps(backend: 'host' | 'namespace', available: boolean, reason?: string): Capabilities {
  return {
    backend,
    available,
    ...(reason ? { reason } : {}),
    isolation: { filesystem: false, network: false, process: false, syscalls: false, user: false },
    limits: { memory: true, pids: true, cpu: false, wallTime: true, openFiles: true, fileSize: true, tmpSize: false },
    changeDetection: 'stat-index',
    snapshots: false,
    profiles: [],
    notes: [],
  };
}

function fakeBackends(list: { caps: Capabilities; health?: { ok: boolean; warnings: string[] } }[]): BackendsView {
  return {
    probeAll: async () => list.map((b) => b.caps),
    select: async (name) => {
      const b = list.find((x) => x.caps.backend === name);
      if (!b) throw new CorralError('INVALID_ARGUMENT', 'unknown backend', {});
      return { backend: { health: async () => b.health ?? { ok: true, warnings: [] } } };
    },
  };
}

function makeApi(overrides: Partial<ApiDeps> = {}, backends: BackendsView = fakeBackends([{ caps: caps('host', true) }])) {
  const logger = memoryLogger();
  const app = createApi({ corral: { exec: { backends } }, logger, version: '9.8.7', ...overrides });
  return { app, logger };
}

async function envelope(res: Response) {
  const body = errorEnvelopeSchema.parse(await res.json());
  assert.equal(body.error.requestId, res.headers.get('x-request-id'));
  return body.error;
}

test('GET /v1/ping answers version and apiVersion, with a generated request id', async () => {
  const { app, logger } = makeApi();
  const res = await app.request('/v1/ping');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.deepEqual(pingSchema.parse(await res.json()), { ok: true, version: '9.8.7', apiVersion: 1 });
  const id = res.headers.get('x-request-id');
  assert.ok(isId('req', id), `request id ${id}`);
  const line = logger.lines.find((l) => l.msg === 'request');
  assert.deepEqual({ ...line?.obj, ms: 0 }, { requestId: id, method: 'GET', path: '/v1/ping', status: 200, ms: 0 });
});

test('x-request-id: a well-formed client id is echoed, a hostile one is replaced', async () => {
  const { app } = makeApi();
  const ok = await app.request('/v1/ping', { headers: { 'x-request-id': 'client-42.a:b_c' } });
  assert.equal(ok.headers.get('x-request-id'), 'client-42.a:b_c');
  for (const bad of ['a b', 'x'.repeat(129), '<script>', 'a/b', '']) {
    const res = await app.request('/v1/ping', { headers: { 'x-request-id': bad } });
    assert.ok(isId('req', res.headers.get('x-request-id')), `replaced ${bad}`);
  }
});

test('GET /v1/system reports the machine and the daemon', async () => {
  const { app } = makeApi({ startedAt: Date.now() - 5000 });
  const res = await app.request('/v1/system');
  assert.equal(res.status, 200);
  const s = systemSchema.parse(await res.json());
  assert.ok(s.memory.totalBytes > 0 && s.memory.availableBytes <= s.memory.totalBytes);
  assert.ok(s.cpus.count >= 1);
  assert.equal(s.daemon.pid, process.pid);
  assert.ok(s.daemon.uptimeSeconds >= 5);
  assert.equal(s.os.platform, process.platform);
});

test('GET /v1/health: ok while one backend works, 503 when none does; an unavailable backend says why', async () => {
  const some = makeApi({}, fakeBackends([{ caps: caps('host', true), health: { ok: true, warnings: ['no isolation'] } }, { caps: caps('namespace', false, 'install bubblewrap') }]));
  const res = await some.app.request('/v1/health');
  assert.equal(res.status, 200);
  assert.deepEqual(healthSchema.parse(await res.json()), {
    ok: true,
    backends: [
      { name: 'host', ok: true, warnings: ['no isolation'] },
      { name: 'namespace', ok: false, warnings: ['install bubblewrap'] },
    ],
  });
  const none = makeApi({}, fakeBackends([{ caps: caps('host', true), health: { ok: false, warnings: ['broken'] } }]));
  const bad = await none.app.request('/v1/health');
  assert.equal(bad.status, 503);
  assert.equal(healthSchema.parse(await bad.json()).ok, false);
});

test('GET /v1/capabilities and /v1/health over the real backends of a Corral', async () => {
  const corral = openCorral();
  const { app } = makeApi({ corral });
  const res = await app.request('/v1/capabilities');
  assert.equal(res.status, 200);
  const list = capabilitiesListSchema.parse(await res.json());
  assert.deepEqual(list.backends.map((b) => b.backend).sort(), ['host', 'namespace']);
  assert.equal(list.backends.find((b) => b.backend === 'host')?.available, true);
  const health = healthSchema.parse(await (await app.request('/v1/health')).json());
  assert.equal(health.backends.length, 2);
  assert.equal(health.ok, true);
});

test('unknown routes answer 404 NOT_FOUND, wrong methods 405 METHOD_NOT_ALLOWED with Allow', async () => {
  const { app } = makeApi();
  // Routes are added before the first request (hono builds its matcher then).
  app.delete('/v1/things/:id', (c) => c.json({ ok: true }));
  const missing = await app.request('/v1/nope');
  assert.equal(missing.status, 404);
  assert.equal((await envelope(missing)).code, 'NOT_FOUND');
  const root = await app.request('/');
  assert.equal(root.status, 404);
  const wrong = await app.request('/v1/ping', { method: 'DELETE' });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'GET, HEAD');
  const err = await envelope(wrong);
  assert.equal(err.code, 'METHOD_NOT_ALLOWED');
  assert.deepEqual(err.details, { method: 'DELETE', allowed: ['GET', 'HEAD'] });
  const post = await app.request('/v1/ping', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(post.status, 405);
  // A path parameter still finds the route.
  const param = await app.request('/v1/things/abc', { method: 'GET' });
  assert.equal(param.status, 405);
  assert.equal(param.headers.get('allow'), 'DELETE');
});

test('errors: a CorralError keeps its code and status; anything else is a bare INTERNAL, logged, never leaked', async () => {
  const { app, logger } = makeApi();
  app.get('/t/corral', () => {
    throw new CorralError('VAULT_NOT_FOUND', 'no vault "x": create it first', { vault: 'x' });
  });
  app.get('/t/crash', () => {
    throw new Error('secret at /root/.corral/corral.db line 42');
  });
  app.get('/t/enoent', () => {
    throw Object.assign(new Error('ENOENT: no such file, open /etc/shadow'), { code: 'ENOENT' });
  });
  const known = await app.request('/t/corral');
  assert.equal(known.status, 404);
  assert.deepEqual({ ...(await envelope(known)), requestId: undefined }, { code: 'VAULT_NOT_FOUND', message: 'no vault "x": create it first', details: { vault: 'x' }, requestId: undefined });
  for (const path of ['/t/crash', '/t/enoent']) {
    const res = await app.request(path, { headers: { 'x-request-id': 'trace-1' } });
    assert.equal(res.status, 500);
    const text = await res.clone().text();
    assert.doesNotMatch(text, /secret|shadow|at |\.ts/);
    const err = await envelope(res);
    assert.equal(err.code, 'INTERNAL');
    assert.deepEqual(err.details, {});
  }
  const logged = logger.lines.filter((l) => l.level === 'error');
  assert.equal(logged.length, 2);
  assert.equal(logged[0]?.obj.requestId, 'trace-1');
  assert.match(String((logged[0]?.obj.err as Error).message), /secret/);
});

test('JSON bodies: malformed, wrong type, unknown fields, wrong content type, empty and bad UTF-8 are 400 INVALID_ARGUMENT', async () => {
  const { app } = makeApi();
  const schema = z.object({ name: z.string(), count: z.number().int().optional() }).strict();
  app.post('/t/echo', async (c) => c.json(await readJson(c, schema)));
  const post = (body: string | Uint8Array, type = 'application/json') => app.request('/t/echo', { method: 'POST', body, headers: { 'content-type': type } });

  const good = await post('{"name":"a","count":2}', 'application/json; charset=utf-8');
  assert.equal(good.status, 200);
  assert.deepEqual(await good.json(), { name: 'a', count: 2 });

  const cases: [string, Response, RegExp][] = [
    ['malformed', await post('{"name":'), /not valid JSON/],
    ['wrong type', await post('{"name":5}'), /invalid at name/],
    ['unknown field', await post('{"name":"a","admin":true}'), /invalid/],
    ['__proto__', await post('{"name":"a","__proto__":{"admin":true}}'), /invalid/],
    ['not an object', await post('[1,2]'), /invalid/],
    ['text/plain', await post('{"name":"a"}', 'text/plain'), /Content-Type: application\/json/],
    ['empty', await post(''), /empty/],
    ['bad UTF-8', await post(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d])), /UTF-8/],
  ];
  for (const [what, res, message] of cases) {
    assert.equal(res.status, 400, what);
    const err = await envelope(res);
    assert.equal(err.code, 'INVALID_ARGUMENT', what);
    assert.match(err.message, message, what);
  }
  const unknown = await envelope(await post('{"name":"a","admin":true}'));
  assert.deepEqual(unknown.details.issues, [{ path: '', code: 'unrecognized_keys', message: 'Unrecognized key: "admin"', keys: ['admin'] }]);
});

test('bodies over the limit are 413 PAYLOAD_TOO_LARGE, by Content-Length or while streaming', async () => {
  const { app } = makeApi({ bodyLimit: 1024 });
  const schema = z.object({ data: z.string() }).strict();
  app.post('/t/echo', async (c) => c.json(await readJson(c, schema)));
  const small = JSON.stringify({ data: 'x'.repeat(900) });
  const ok = await app.request('/t/echo', { method: 'POST', body: small, headers: { 'content-type': 'application/json' } });
  assert.equal(ok.status, 200);

  const big = JSON.stringify({ data: 'x'.repeat(2000) });
  const declared = await app.request('/t/echo', { method: 'POST', body: big, headers: { 'content-type': 'application/json', 'content-length': String(big.length) } });
  assert.equal(declared.status, 413);
  const err = await envelope(declared);
  assert.equal(err.code, 'PAYLOAD_TOO_LARGE');
  assert.deepEqual(err.details, { limit: 1024 });

  // Chunked: no Content-Length, the limit is counted while reading and the stream is cancelled.
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(256).fill(0x20));
      if (pulled > 1000) controller.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  const chunked = await app.request('/t/echo', { method: 'POST', body: stream, headers: { 'content-type': 'application/json' }, duplex: 'half' } as RequestInit);
  assert.equal(chunked.status, 413);
  assert.equal((await envelope(chunked)).code, 'PAYLOAD_TOO_LARGE');
  assert.ok(pulled < 20, `read ${pulled} chunks`);
  assert.ok(cancelled);
});

test('apps are independent: no state shared between instances', async () => {
  const a = makeApi({ version: '1.0.0' });
  const b = makeApi({ version: '2.0.0' });
  a.app.get('/only-a', (c) => c.json({}));
  assert.equal((await a.app.request('/only-a')).status, 200);
  assert.equal((await b.app.request('/only-a')).status, 404);
  assert.equal(((await (await b.app.request('/v1/ping')).json()) as { version: string }).version, '2.0.0');
});
