import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { auditListSchema, auditVerificationSchema, diffSchema, historySchema } from '../../src/protocol/api-schemas.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import { openCorral } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

const text = (s: string) => new TextEncoder().encode(s);

function setup() {
  const corral = openCorral();
  const app = createApi({ corral, logger: quiet, version: '0.0.0', auth: { keys: corral.keys } });
  const call = (path: string, key?: string) => app.request(path, { headers: key ? { authorization: `Bearer ${key}` } : {} }, { transport: key ? 'tcp' : 'unix' });
  const key = (tenant: string, scopes: KeyScope[]) => corral.keys.create({ tenant, scopes }).secret;
  return { corral, call, key };
}

test('history lists commits newest first with origin, summary and checkpoints; diff gives patches between any two versions', async () => {
  const { corral, call } = setup();
  const sb = corral.sandboxes.create({});
  corral.files.write(sb.vault, '/app.ts', text('const a = 1;\nconsole.log(a);\n'));
  corral.checkpoints.save(sb.vault, 'first', 'before the change');
  corral.files.write(sb.vault, '/app.ts', text('const a = 2;\nconsole.log(a);\n'));
  corral.files.write(sb.vault, '/bin.dat', new Uint8Array([0, 1, 2]));

  const res = await call(`/v1/sandboxes/${sb.id}/history`);
  assert.equal(res.status, 200);
  const h = historySchema.parse(await res.json());
  assert.equal(h.sandbox, sb.id);
  assert.equal(h.vault, sb.vault);
  assert.equal(h.truncated, false);
  const [last, second, first] = h.commits;
  assert.ok(last && second && first);
  assert.equal(last.head, true);
  assert.deepEqual(last.summary, { added: 1, modified: 0, deleted: 0, bytesAdded: 3, bytesRemoved: 0 });
  assert.equal(second.summary.modified, 1);
  assert.deepEqual(first.checkpoints, ['first']);
  assert.equal(first.summary.added, 1);
  assert.deepEqual(h.checkpoints.map((c) => c.name), ['first']);
  const limited = historySchema.parse(await (await call(`/v1/sandboxes/${sb.id}/history?limit=1`)).json());
  assert.equal(limited.commits.length, 1);
  assert.equal(limited.truncated, true);

  // Default: from the parent of HEAD; a binary file has no patch.
  const d1 = diffSchema.parse(await (await call(`/v1/sandboxes/${sb.id}/diff`)).json());
  assert.equal(d1.to, last.id);
  assert.deepEqual(d1.changes.map((c) => [c.path, c.change, c.binary]), [['/bin.dat', 'added', true]]);
  // Between a checkpoint and HEAD: a unified patch of the text file.
  const d2 = diffSchema.parse(await (await call(`/v1/sandboxes/${sb.id}/diff?from=first&to=HEAD`)).json());
  const ts = d2.changes.find((c) => c.path === '/app.ts')!;
  assert.equal(ts.change, 'modified');
  assert.match(ts.patch!, /^-const a = 1;$/m);
  assert.match(ts.patch!, /^\+const a = 2;$/m);
  assert.equal(d2.summary.modified, 1);
  assert.equal(d2.truncated, false);
  const d3 = diffSchema.parse(await (await call(`/v1/sandboxes/${sb.id}/diff?from=first&path=/bin.dat`)).json());
  assert.deepEqual(d3.changes.map((c) => c.path), ['/bin.dat']);
  // The commit selected in the timeline: to=<id>, from its parent.
  const d4 = diffSchema.parse(await (await call(`/v1/sandboxes/${sb.id}/diff?to=${second.id}`)).json());
  assert.equal(d4.from, first.id);
  assert.deepEqual(d4.changes.map((c) => c.path), ['/app.ts']);
});

test('history and diff refuse bad input and hide other tenants\' sandboxes', async () => {
  const { corral, call, key } = setup();
  const mine = corral.sandboxes.create({}, { tenant: 'acme' });
  const theirs = corral.sandboxes.create({}, { tenant: 'other' });
  const reader = key('acme', ['sandboxes:read', 'files']);
  assert.equal((await call(`/v1/sandboxes/${mine.id}/history`, reader)).status, 200);
  assert.equal((await call(`/v1/sandboxes/${mine.id}/diff?from=HEAD&to=HEAD`, reader)).status, 200);
  await errorOf(await call(`/v1/sandboxes/${theirs.id}/history`, reader), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call(`/v1/sandboxes/${theirs.id}/diff`, reader), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call(`/v1/sandboxes/${mine.id}/diff`, key('acme', ['sandboxes:read'])), 403, 'PERMISSION_DENIED');
  await errorOf(await call(`/v1/sandboxes/${mine.id}/history?limit=0`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call(`/v1/sandboxes/${mine.id}/history?limit=1&limit=2`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call(`/v1/sandboxes/${mine.id}/history?nope=1`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call(`/v1/sandboxes/${mine.id}/diff?from=../../etc`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call(`/v1/sandboxes/${mine.id}/diff?from=nosuchcheckpoint`), 404, 'REF_NOT_FOUND');
  await errorOf(await call('/v1/sandboxes/sbx_bad/history'), 400, 'INVALID_ARGUMENT');
});

test('the audit log: filters, the chain\'s verification, and keys limited to their own sandboxes', async () => {
  const { corral, call, key } = setup();
  const sb = corral.sandboxes.create({}, { tenant: 'acme' });
  corral.files.write(sb.vault, '/a.txt', text('a'));
  corral.checkpoints.save(sb.vault, 'cp');
  const all = auditListSchema.parse(await (await call('/v1/audit')).json());
  assert.ok(all.records.length >= 3);
  assert.ok(all.records.every((r, i) => i === 0 || r.seq > all.records[i - 1]!.seq), 'oldest first');
  const saves = auditListSchema.parse(await (await call('/v1/audit?op=checkpoint.save')).json());
  assert.ok(saves.records.length >= 1 && saves.records.every((r) => r.op === 'checkpoint.save'));
  const bySandbox = auditListSchema.parse(await (await call(`/v1/audit?sandbox=${sb.id}&limit=1`)).json());
  assert.equal(bySandbox.records.length, 1);
  assert.equal(bySandbox.records[0]!.vault, sb.vault);
  const future = auditListSchema.parse(await (await call(`/v1/audit?since=${new Date(Date.now() + 60_000).toISOString()}`)).json());
  assert.deepEqual(future.records, []);
  const v = auditVerificationSchema.parse(await (await call('/v1/audit/verify')).json());
  assert.equal(v.ok, true);
  assert.equal(v.records, v.headSeq);

  // Tampering shows.
  corral.store.db.run("UPDATE audit SET actor = 'mallory' WHERE seq = 1");
  const broken = auditVerificationSchema.parse(await (await call('/v1/audit/verify')).json());
  assert.equal(broken.ok, false);
  assert.equal(broken.problems[0]!.seq, 1);

  const admin = key('acme', ['admin']);
  const own = auditListSchema.parse(await (await call(`/v1/audit?sandbox=${sb.id}`, admin)).json());
  assert.ok(own.records.length >= 1 && own.records.every((r) => r.vault === sb.vault));
  await errorOf(await call('/v1/audit', admin), 403, 'PERMISSION_DENIED');
  await errorOf(await call(`/v1/audit?vault=${sb.vault}`, admin), 403, 'PERMISSION_DENIED');
  await errorOf(await call('/v1/audit/verify', admin), 403, 'PERMISSION_DENIED');
  await errorOf(await call(`/v1/audit?sandbox=${sb.id}`, key('acme', ['sandboxes:read'])), 403, 'PERMISSION_DENIED');
  const other = corral.sandboxes.create({}, { tenant: 'other' });
  await errorOf(await call(`/v1/audit?sandbox=${other.id}`, admin), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call('/v1/audit?limit=abc'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('/v1/audit?since=yesterday'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('/v1/audit?op=DROP%20TABLE'), 400, 'INVALID_ARGUMENT');
});
