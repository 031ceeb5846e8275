import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { apiSchemas, idSchema, isId, newId, idPrefixes } from '../../src/protocol/api-schemas.ts';
import { errorCodes } from '../../src/protocol/errors.ts';
import { ROOT } from '../helpers.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { quiet } from './api-test-helpers.ts';

const backends = { probeAll: async () => [], select: async () => ({ backend: { health: async () => ({ ok: true, warnings: [] }) } }) };

type Doc = { openapi: string; info: { version: string }; paths: Record<string, Record<string, any>>; components: { schemas: Record<string, any> } };

test('GET /openapi.json is an OpenAPI 3.1 document of every route, generated from the zod schemas', async () => {
  const app = createApi({ corral: { exec: { backends } }, logger: quiet, version: '1.2.3' });
  const res = await app.request('/openapi.json');
  assert.equal(res.status, 200);
  const doc = (await res.json()) as Doc;
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(doc.info.version, '1.2.3');
  assert.deepEqual(Object.keys(doc.paths).sort(), ['/v1/capabilities', '/v1/health', '/v1/ping', '/v1/system']);
  assert.deepEqual(Object.keys(doc.components.schemas).sort(), Object.keys(apiSchemas).sort());
  const ping = doc.paths['/v1/ping']!.get;
  assert.equal(ping.operationId, 'ping');
  assert.deepEqual(ping.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/Ping' });
  assert.deepEqual(ping.responses.default.content['application/json'].schema, { $ref: '#/components/schemas/ErrorEnvelope' });
  // Every $ref resolves, and schemas are plain JSON Schema 2020-12 (no $schema/$id noise per component).
  const text = JSON.stringify(doc);
  for (const m of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) assert.ok(doc.components.schemas[m[1]!], `ref ${m[1]}`);
  for (const s of Object.values(doc.components.schemas)) assert.equal(s.$schema, undefined);
  // The error envelope lists every code of the registry, and is closed.
  const err = doc.components.schemas.ErrorEnvelope;
  assert.deepEqual([...err.properties.error.properties.code.enum].sort(), Object.keys(errorCodes).sort());
  assert.equal(err.additionalProperties, false);
  assert.match(doc.components.schemas.System.properties.kernel.description, /uname/);
  // Same document on every call.
  assert.deepEqual(await (await app.request('/openapi.json')).json(), doc);
});

test('newId: prefixed, 26 base32 characters, unique, sorted by time; isId and idSchema check the prefix', () => {
  const ids = new Set<string>();
  for (let i = 0; i < 1000; i++) ids.add(newId('sbx'));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.ok(isId('sbx', id), id);
  for (const p of idPrefixes) assert.match(newId(p), new RegExp(`^${p}_[0-9a-hjkmnp-tv-z]{26}$`));
  assert.ok(newId('exec', 1_000) < newId('exec', 2_000));
  assert.ok(newId('exec', 1_700_000_000_000) < newId('exec', 1_700_000_000_001));
  const id = newId('apr');
  assert.equal(isId('sbx', id), false);
  assert.equal(isId('apr', id.toUpperCase()), false);
  for (const bad of ['apr_', `${id}x`, id.slice(0, -1), `${id.slice(0, -1)}u`, 'apr_../../etc/passwd', `${id}\0`, 42, null]) assert.equal(isId('apr', bad), false, String(bad));
  assert.equal(idSchema('proc').safeParse(newId('proc')).success, true);
  const bad = idSchema('proc').safeParse('proc_nope');
  assert.equal(bad.success, false);
  assert.match(bad.error!.issues[0]!.message, /proc_/);
});

test('the SDK-facing schemas import nothing from Node, however deep', () => {
  // Follows the schemas' local imports: each may import only zod or another local protocol module.
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [, spec] of readFileSync(join(ROOT, 'src/protocol', file), 'utf8').matchAll(/from '([^']+)'/g)) {
      if (spec === 'zod') continue;
      assert.match(spec!, /^\.\/[a-z-]+\.ts$/, `${file} imports ${spec}`);
      visit(spec!.slice(2));
    }
  };
  visit('api-schemas.ts');
  assert.ok(seen.has('errors.ts') && seen.has('ids.ts'));
});
