import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Hono } from 'hono';
import { createApi } from '../../src/api/api-app.ts';
import type { ApiEnv } from '../../src/api/api-types.ts';
import { registerUiRoutes } from '../../src/api/ui-routes.ts';
import { openCorral, tempDir } from '../helpers.ts';

function uiApp(dir: string) {
  const app = new Hono<ApiEnv>();
  registerUiRoutes(app, { dir });
  return app;
}

test('serves the built files with their types, gzip, caching and a strict CSP; nothing outside the build', async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Corral</title>');
  const js = 'console.log("corral");\n'.repeat(100);
  writeFileSync(join(dir, 'assets', 'index-abc.js'), js);
  writeFileSync(join(dir, '..', 'secret.txt'), 'no');
  const app = uiApp(dir);

  for (const path of ['/ui/', '/ui/index.html']) {
    const res = await app.request(path);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.match(res.headers.get('content-security-policy')!, /script-src 'self'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await res.text(), /<title>Corral/);
  }
  const plain = await app.request('/ui/assets/index-abc.js');
  assert.equal(plain.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(plain.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal(await plain.text(), js);
  const gz = await app.request('/ui/assets/index-abc.js', { headers: { 'accept-encoding': 'gzip, br' } });
  assert.equal(gz.headers.get('content-encoding'), 'gzip');
  assert.equal(gunzipSync(Buffer.from(await gz.arrayBuffer())).toString(), js);
  assert.equal((await app.request('/ui')).status, 308);
  for (const bad of ['/ui/../secret.txt', '/ui/%2e%2e/secret.txt', '/ui/assets/../../secret.txt', '/ui/nope.js', '/ui/assets'])
    assert.equal((await app.request(bad)).status, 404, bad);
});

test('answers 503 with what to do when the dashboard is not built', async () => {
  const res = await uiApp(join(tempDir(), 'missing')).request('/ui/');
  assert.equal(res.status, 503);
  assert.match(await res.text(), /setup\.sh/);
});

test('the daemon serves /ui/ without a key over TCP, while the API still asks for one', async () => {
  const corral = openCorral();
  const app = createApi({ corral, logger: { info() {}, warn() {}, error() {} }, version: '0', auth: { keys: corral.keys } });
  const ui = await app.request('/ui/', {}, { transport: 'tcp' });
  assert.ok(ui.status === 200 || ui.status === 503, `got ${ui.status}`);
  assert.equal((await app.request('/v1/sandboxes', {}, { transport: 'tcp' })).status, 401);
  assert.equal((await app.request('/uix', {}, { transport: 'tcp' })).status, 401);
});
