// Hostile input for every route the daemon documents: bad ids, NUL and traversal in path
// parameters, malformed JSON, wrong types, unknown fields, huge bodies. Each is answered with a 4xx
// error envelope and changes nothing; the daemon keeps serving. Then slow clients (slowloris):
// trickled headers and bodies are cut off at the deadline while others are served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { request } from 'node:http';
import { createApi } from '../../src/api/api-app.ts';
import { startDaemonServer } from '../../src/daemon/daemon-server.ts';
import { errorEnvelopeSchema, newId } from '../../src/protocol/api-schemas.ts';
import { openCorral, tempDir } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

function setup() {
  const corral = openCorral();
  corral.vaults.create('src');
  const app = createApi({ corral, logger: quiet, version: '0.0.0', bodyLimit: 64 * 1024 });
  return { corral, app };
}

const BAD_IDS = ['nope', 'sbx_..%2F..%2Fetc', '%00', 'a'.repeat(5000), 'exec_%2e%2e', 'proc_'];
const BODIES: (string | undefined)[] = ['{', '[]', '"text"', 'null', '{"zzz": 1}', '{"argv": 5, "shell": {}}', JSON.stringify({ x: 'y'.repeat(70 * 1024) }), '{"path": "/\\u0000"}'];

async function expectError(res: Response, what: string): Promise<void> {
  assert.ok(res.status >= 400 && res.status < 500, `${what}: status ${res.status}`);
  const text = await res.text();
  // /mcp speaks JSON-RPC: its own refusals are JSON-RPC error objects, as MCP clients expect
  // (the body limit in front of it still answers with the envelope).
  if (/ \/mcp\b/.test(what) && typeof JSON.parse(text).error?.code === 'number') return;
  const parsed = errorEnvelopeSchema.safeParse(JSON.parse(text));
  assert.ok(parsed.success, `${what}: not an error envelope: ${text.slice(0, 200)}`);
}

test('every documented route answers hostile input with a 4xx envelope and changes nothing', async () => {
  const { corral, app } = setup();
  const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
  const sandbox = corral.sandboxes.create({ vault: 'src', backend: 'host', policy: 'permissive' });
  const before = { sandboxes: corral.sandboxes.list().length, vaults: corral.vaults.list().length, head: corral.store.getVault('src').head, audit: corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM audit')!.n };
  let tried = 0;
  for (const [template, methods] of Object.entries(doc.paths)) {
    const params = [...template.matchAll(/\{([a-z]+)\}/g)].map((m) => m[1]!);
    for (const method of Object.keys(methods)) {
      const verb = method.toUpperCase();
      // Bad ids in every path parameter (the others well-formed but unknown).
      if (params.length > 0)
        for (const bad of BAD_IDS) {
          const path = template.replace(/\{([a-z]+)\}/g, (_m, name: string) => (name === params[0] ? bad : name === 'name' ? 'cp' : newId('sbx')));
          const res = await app.request(path, { method: verb, ...(verb === 'GET' || verb === 'DELETE' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } }) });
          await expectError(res, `${verb} ${path.slice(0, 120)}`);
          tried++;
        }
      // Hostile bodies on a real sandbox.
      if (verb === 'POST' || verb === 'PUT') {
        const path = template.replace('{id}', template.startsWith('/v1/sandboxes') ? sandbox.id : newId('exec')).replace('{name}', 'nope');
        if (path.includes('/files') && verb === 'PUT') continue; // raw bytes, not JSON: its own tests
        for (const body of BODIES) {
          const res = await app.request(`${path}${path.includes('/files') ? '?path=/x' : ''}`, { method: verb, body, headers: { 'content-type': 'application/json' } });
          if (res.status < 400) {
            // Some bodies are valid for some routes (e.g. {} options); nothing hostile may succeed in changing state.
            await res.body?.cancel();
            continue;
          }
          await expectError(res, `${verb} ${path} with ${body!.slice(0, 40)}`);
          tried++;
        }
      }
    }
  }
  assert.ok(tried > 200, `only ${tried} hostile requests`);
  // Unknown query parameters everywhere are refused too (a sample).
  await expectError(await app.request(`/v1/sandboxes/${sandbox.id}?zz=1`), 'unknown query');
  await expectError(await app.request(`/v1/sandboxes?state=ready&state=paused`), 'repeated query');
  const after = { sandboxes: corral.sandboxes.list().length, vaults: corral.vaults.list().length, head: corral.store.getVault('src').head };
  assert.deepEqual({ ...after }, { sandboxes: before.sandboxes, vaults: before.vaults, head: before.head });
  assert.equal((await app.request('/v1/ping')).status, 200);
});

test('slow clients: trickled headers and bodies are cut off at their deadline; the daemon keeps serving others', async () => {
  const { app } = setup();
  const socketPath = join(tempDir(), 'd.sock');
  const server = await startDaemonServer({ fetch: app.fetch, socketPath, headersTimeoutMs: 400, requestTimeoutMs: 800 });
  const ping = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ socketPath, path: '/v1/ping', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  /** Sends `parts` one every 100 ms; resolves with what the server answered and when the connection closed. */
  const trickle = (parts: string[]) =>
    new Promise<{ answer: string; ms: number; sent: number }>((resolve) => {
      const t0 = Date.now();
      const s = connect(socketPath);
      let answer = '';
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < parts.length && !s.destroyed) s.write(parts[sent++]!);
      }, 100);
      s.on('data', (b) => (answer += b.toString()));
      s.on('error', () => {});
      s.on('close', () => {
        clearInterval(timer);
        resolve({ answer, ms: Date.now() - t0, sent });
      });
    });
  try {
    const headerParts = 'GET /v1/ping HTTP/1.1\r\nHost: corral\r\nX-Slow: '.split('').concat(Array(100).fill('a'));
    const slowHeaders = trickle(headerParts);
    const bodyParts = ['POST /v1/sandboxes HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n', ...Array(60).fill('{')];
    const slowBody = trickle(bodyParts);
    // Others are served meanwhile.
    assert.equal(await ping(), 200);
    const h = await slowHeaders;
    const b = await slowBody;
    assert.ok(h.sent < headerParts.length, `the trickled headers were cut off (${h.sent} parts sent in ${h.ms} ms)`);
    assert.ok(b.sent < bodyParts.length, `the trickled body was cut off (${b.sent} parts sent in ${b.ms} ms)`);
    assert.doesNotMatch(h.answer, /200 OK/);
    assert.equal(await ping(), 200);
  } finally {
    await server.close();
  }
});
