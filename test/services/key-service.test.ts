import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isId } from '../../src/protocol/ids.ts';
import { isCorralError, type ErrorCode } from '../../src/protocol/errors.ts';
import { hasScope, keyScopes, validateKeyScopes, validateTenantName } from '../../src/protocol/key-scopes.ts';
import { Corral } from '../../src/services/corral.ts';
import { LAST_USED_RESOLUTION_MS } from '../../src/services/key-service.ts';
import { openCorral, tempDir, testCaller } from '../helpers.ts';

const code = (c: ErrorCode) => (e: unknown) => isCorralError(e, c);

function unauthenticatedMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isCorralError(e, 'UNAUTHENTICATED'), `expected UNAUTHENTICATED, got ${String(e)}`);
    return e.message;
  }
  assert.fail('expected UNAUTHENTICATED');
}

test('create: a key_ id and a crl_ secret shown once; only its sha256 is stored, nowhere the secret', () => {
  const home = tempDir();
  const corral = openCorral(home);
  const key = corral.keys.create({ tenant: 'acme', name: 'ci', scopes: ['exec', 'sandboxes:read', 'exec'] });
  assert.ok(isId('key', key.id));
  assert.match(key.secret, /^crl_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(key.scopes, ['sandboxes:read', 'exec'], 'once each, canonical order');
  assert.equal(key.tenant, 'acme');
  assert.equal(key.name, 'ci');
  assert.match(key.createdAt, /^\d{4}-\d\d-\d\dT/);
  const other = corral.keys.create({ tenant: 'acme', scopes: ['admin'] });
  assert.notEqual(other.secret, key.secret);
  assert.equal(other.name, null);

  const row = corral.store.db.get<{ hash: string }>('SELECT hash FROM api_keys WHERE id = ?', key.id)!;
  assert.match(row.hash, /^[0-9a-f]{64}$/);
  // The database files (main and WAL) never hold the secret, not even in the audit log.
  corral.store.db.raw.exec('PRAGMA wal_checkpoint(FULL)');
  for (const f of readdirSync(home).filter((n) => n.startsWith('corral.db'))) {
    const bytes = readFileSync(join(home, f));
    assert.equal(bytes.includes(key.secret), false, `${f} holds the secret`);
    assert.equal(bytes.includes(key.secret.slice(4)), false, `${f} holds the secret's body`);
  }
  const audit = corral.store.audit.list({ op: 'key.create' });
  assert.equal(audit.length, 2);
  assert.equal(audit[0]!.target, key.id);
  assert.deepEqual(audit[0]!.details.scopes, ['sandboxes:read', 'exec']);
  assert.equal(audit[0]!.details.tenant, 'acme');
});

test('create refuses bad tenants, names and scopes, and writes nothing', () => {
  const corral = openCorral();
  for (const tenant of ['', 'Acme', '-x', '_x', 'a b', '../x', 'a'.repeat(65), 'x\0', 42])
    assert.throws(() => corral.keys.create({ tenant: tenant as string, scopes: ['exec'] }), code('INVALID_NAME'), String(tenant));
  for (const scopes of [[], ['root'], ['exec', 'EXEC'], ['sandboxes:*'], [1], 'exec'])
    assert.throws(() => corral.keys.create({ tenant: 'acme', scopes: scopes as string[] }), code('INVALID_ARGUMENT'), JSON.stringify(scopes));
  for (const name of ['', 'x'.repeat(129), 'bell\x07', 'esc\x1b[31m', 'rtl\u202e'])
    assert.throws(() => corral.keys.create({ tenant: 'acme', name, scopes: ['exec'] }), code('INVALID_NAME'), JSON.stringify(name));
  assert.equal(corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM api_keys')!.n, 0);
  assert.deepEqual(corral.keys.listTenants(), []);
});

test('verify: the key\'s tenant and scopes; malformed, unknown and revoked secrets all fail the same way', () => {
  const corral = openCorral();
  const key = corral.keys.create({ tenant: 'acme', scopes: ['files', 'approvals'] });
  assert.deepEqual(corral.keys.verify(key.secret), { keyId: key.id, tenant: 'acme', scopes: ['files', 'approvals'] });

  const unknown = 'crl_' + 'A'.repeat(43);
  const messages = new Set<string>();
  for (const bad of [unknown, '', 'crl_', key.secret + 'x', key.secret.slice(0, -1), key.secret.toUpperCase(), ` ${key.secret}`, key.secret.replace('crl_', 'crx_'), 'crl_' + 'é'.repeat(43), null, undefined, 42, { secret: key.secret }])
    messages.add(unauthenticatedMessage(() => corral.keys.verify(bad)));
  corral.keys.revoke(key.id);
  messages.add(unauthenticatedMessage(() => corral.keys.verify(key.secret)));
  assert.equal(messages.size, 1, 'one message for every failure');
  assert.doesNotMatch([...messages][0]!, /revoked|unknown|malformed/i);
});

test('verify records the last use at most once a minute', () => {
  const home = tempDir();
  let now = Date.parse('2026-01-01T00:00:00Z');
  const corral = new Corral({ home, caller: testCaller, now: () => now });
  after(() => corral.close());
  const key = corral.keys.create({ tenant: 'acme', scopes: ['exec'] });
  const lastUsed = () => corral.keys.list()[0]!.lastUsedAt;
  assert.equal(lastUsed(), null);
  corral.keys.verify(key.secret);
  assert.equal(lastUsed(), '2026-01-01T00:00:00.000Z');
  now += LAST_USED_RESOLUTION_MS - 1;
  corral.keys.verify(key.secret);
  assert.equal(lastUsed(), '2026-01-01T00:00:00.000Z', 'not written again within the minute');
  now += 1;
  corral.keys.verify(key.secret);
  assert.equal(lastUsed(), '2026-01-01T00:01:00.000Z');
  assert.equal(corral.store.audit.list({ op: 'key.verify' }).length, 0, 'a use is not an audit record');
});

test('list: oldest first, per tenant, revoked ones flagged, never a secret or a hash', () => {
  let now = 1_000_000;
  const corral = new Corral({ home: tempDir(), caller: testCaller, now: () => now++ });
  after(() => corral.close());
  const a = corral.keys.create({ tenant: 'acme', name: 'one', scopes: ['exec'] });
  const b = corral.keys.create({ tenant: 'beta', scopes: ['admin'] });
  const c = corral.keys.create({ tenant: 'acme', scopes: ['files'] });
  corral.keys.revoke(c.id);
  const all = corral.keys.list();
  assert.deepEqual(all.map((k) => k.id), [a.id, b.id, c.id]);
  assert.deepEqual(corral.keys.list({ tenant: 'acme' }).map((k) => [k.id, k.revoked]), [[a.id, false], [c.id, true]]);
  assert.deepEqual(corral.keys.list({ tenant: 'nobody' }), []);
  assert.throws(() => corral.keys.list({ tenant: 'NOPE' }), code('INVALID_NAME'));
  for (const k of all) {
    assert.deepEqual(Object.keys(k).sort(), ['createdAt', 'id', 'lastUsedAt', 'name', 'revoked', 'revokedAt', 'scopes', 'tenant']);
    const text = JSON.stringify(k);
    for (const s of [a, b, c]) assert.equal(text.includes(s.secret.slice(4)), false);
  }
  assert.equal(all[2]!.revoked, true);
  assert.match(all[2]!.revokedAt!, /^\d{4}-/);
});

test('revoke: idempotent, KEY_NOT_FOUND for an unknown id, INVALID_ARGUMENT for a malformed one; audited', () => {
  const corral = openCorral();
  const key = corral.keys.create({ tenant: 'acme', scopes: ['exec'] });
  const first = corral.keys.revoke(key.id);
  assert.equal(first.revoked, true);
  const again = corral.keys.revoke(key.id);
  assert.equal(again.revokedAt, first.revokedAt, 'the first revocation time stays');
  assert.throws(() => corral.keys.revoke('key_' + '0'.repeat(26)), code('KEY_NOT_FOUND'));
  for (const bad of ['', 'key_x', 'sbx_' + '0'.repeat(26), 'key_' + '0'.repeat(26) + '; DROP TABLE api_keys'])
    assert.throws(() => corral.keys.revoke(bad), code('INVALID_ARGUMENT'), bad);
  const audit = corral.store.audit.list({ op: 'key.revoke' });
  assert.deepEqual(audit.map((r) => [r.result, r.details.alreadyRevoked ?? null]), [['ok', false], ['ok', true], ['error:KEY_NOT_FOUND', null]]);
});

test('tenants: a key creates its tenant; quotas set, changed one at a time, cleared; audited', () => {
  const corral = openCorral();
  assert.deepEqual(corral.keys.quota('acme'), { sandboxes: null, concurrentExecs: null, storageBytes: null });
  assert.equal(corral.keys.findTenant('acme'), undefined);
  corral.keys.create({ tenant: 'acme', scopes: ['exec'] });
  const revoked = corral.keys.create({ tenant: 'acme', scopes: ['exec'] });
  corral.keys.revoke(revoked.id);
  assert.deepEqual(corral.keys.listTenants().map((t) => [t.name, t.activeKeys]), [['acme', 1]]);

  let t = corral.keys.setQuota('acme', { sandboxes: 3, storageBytes: 1024 });
  assert.deepEqual(t.quota, { sandboxes: 3, concurrentExecs: null, storageBytes: 1024 });
  t = corral.keys.setQuota('acme', { concurrentExecs: 2 });
  assert.deepEqual(t.quota, { sandboxes: 3, concurrentExecs: 2, storageBytes: 1024 }, 'absent fields stay');
  t = corral.keys.setQuota('acme', { sandboxes: null, concurrentExecs: 0 });
  assert.deepEqual(corral.keys.quota('acme'), { sandboxes: null, concurrentExecs: 0, storageBytes: 1024 });
  assert.equal(t.activeKeys, 1);

  // A quota for a tenant with no key yet makes its row.
  corral.keys.setQuota('beta', { sandboxes: 1 });
  assert.deepEqual(corral.keys.listTenants().map((x) => x.name), ['acme', 'beta']);
  for (const bad of [{ sandboxes: -1 }, { sandboxes: 1.5 }, { sandboxes: '3' }, { storageBytes: 2 ** 60 }, { disk: 1 }, null, []])
    assert.throws(() => corral.keys.setQuota('acme', bad as never), code('INVALID_ARGUMENT'), JSON.stringify(bad));
  assert.throws(() => corral.keys.setQuota('Acme', { sandboxes: 1 }), code('INVALID_NAME'));
  assert.deepEqual(corral.keys.quota('acme'), { sandboxes: null, concurrentExecs: 0, storageBytes: 1024 }, 'refused changes change nothing');
  const audit = corral.store.audit.list({ op: 'tenant.quota' }).filter((r) => r.result === 'ok');
  assert.deepEqual(audit.map((r) => r.target), ['acme', 'acme', 'acme', 'beta']);
  assert.deepEqual(audit[2]!.details.sandboxes, null);
});

test('the sandbox service enforces the quota set here', () => {
  const corral = openCorral();
  corral.keys.setQuota('acme', { sandboxes: 1 });
  const scope = { tenant: 'acme' };
  const sb = corral.sandboxes.create({}, scope);
  assert.throws(() => corral.sandboxes.create({}, scope), code('QUOTA_EXCEEDED'));
  corral.sandboxes.create({}, { tenant: 'beta' });
  corral.sandboxes.destroy(sb.id, {}, scope);
  corral.sandboxes.create({}, scope);
});

test('scopes: admin implies every other; tenant names are lower case', () => {
  for (const s of keyScopes) {
    assert.equal(hasScope(['admin'], s), true);
    assert.equal(hasScope([s], s), true);
  }
  assert.equal(hasScope(['sandboxes:read'], 'sandboxes:write'), false);
  assert.equal(hasScope(['exec', 'files'], 'approvals'), false);
  assert.equal(hasScope([], 'exec'), false);
  assert.deepEqual(validateKeyScopes(['admin', 'exec']), ['exec', 'admin']);
  assert.equal(validateTenantName('team-a_1'), 'team-a_1');
  assert.equal(validateTenantName('a'.repeat(64)), 'a'.repeat(64));
});
