import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCorralError } from '../../src/protocol/errors.ts';
import { corral, openCorral, tempDir } from '../helpers.ts';

test('corral keys create|list|revoke: the secret once on stdout, a warning on stderr; the rows are what a daemon reads', () => {
  const home = tempDir();
  const made = corral(home, ['keys', 'create', '--tenant', 'acme', '--name', 'ci', '--scope', 'exec', '--scope', 'sandboxes:read']);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /^crl_[A-Za-z0-9_-]{43}\n$/);
  assert.match(made.stderr, /^created key_\w+ for tenant acme \(sandboxes:read, exec\): the secret cannot be shown again/);
  const secret = made.stdout.trim();

  const json = corral(home, ['keys', 'create', '--tenant', 'acme', '--scope', 'admin', '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(Object.keys(json.json).sort(), ['createdAt', 'id', 'name', 'scopes', 'secret', 'tenant']);
  assert.deepEqual(json.json.scopes, ['admin']);
  assert.match(json.stderr, /cannot be shown again/, 'warned even with --json');

  // A daemon on the same home sees the key at once.
  const live = openCorral(home);
  const verified = live.keys.verify(secret);
  assert.equal(verified.tenant, 'acme');

  const list = corral(home, ['keys', 'list', '--json']);
  assert.equal(list.code, 0);
  assert.equal(list.json.keys.length, 2);
  assert.equal(list.stdout.includes(secret.slice(4)), false);
  assert.equal(list.stdout.includes('hash'), false);
  const human = corral(home, ['keys', 'list']);
  assert.match(human.stdout, /^ID\s+TENANT\s+NAME\s+SCOPES/);
  assert.match(human.stdout, new RegExp(`${verified.keyId}\\s+acme\\s+ci\\s+sandboxes:read,exec\\s.*active`));
  assert.equal(human.stdout.includes(secret.slice(4)), false);

  const revoked = corral(home, ['keys', 'revoke', verified.keyId]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, new RegExp(`^revoked ${verified.keyId} \\(tenant acme, ci\\)`));
  assert.throws(() => live.keys.verify(secret), (e) => isCorralError(e, 'UNAUTHENTICATED'));
  const again = corral(home, ['keys', 'revoke', verified.keyId, '--json']);
  assert.equal(again.code, 0);
  assert.equal(again.json.revoked, true);
  assert.match(corral(home, ['keys', 'list', '--tenant', 'acme']).stdout, /revoked \d{4}-/);
  assert.equal(corral(home, ['keys', 'list', '--tenant', 'beta', '--json']).json.keys.length, 0);
});

test('corral keys: bad input is an error envelope with the registry exit code, and nothing is written', () => {
  const home = tempDir();
  const cases: [string[], string, number][] = [
    [['keys', 'create', '--tenant', 'acme'], 'INVALID_ARGUMENT', 2],
    [['keys', 'create', '--tenant', 'acme', '--scope', 'root'], 'INVALID_ARGUMENT', 2],
    [['keys', 'create', '--tenant', 'Acme', '--scope', 'exec'], 'INVALID_NAME', 2],
    [['keys', 'create', '--scope', 'exec'], 'INVALID_ARGUMENT', 2],
    [['keys', 'revoke', 'key_0000000000000000000000000a'], 'KEY_NOT_FOUND', 3],
    [['keys', 'revoke', 'nope'], 'INVALID_ARGUMENT', 2],
    [['tenants', 'quota', 'acme', '--sandboxes', 'many'], 'INVALID_ARGUMENT', 2],
    [['tenants', 'quota', 'acme', '--storage', '12 parsecs'], 'INVALID_ARGUMENT', 2],
  ];
  for (const [args, code, exit] of cases) {
    const r = corral(home, [...args, '--json']);
    assert.equal(r.code, exit, `${args.join(' ')}: ${r.stdout}`);
    assert.equal(r.json?.error?.code, code, args.join(' '));
  }
  assert.deepEqual(corral(home, ['tenants', 'list', '--json']).json, { tenants: [] });
  assert.match(corral(home, ['keys', 'list']).stdout, /no API keys/);
});

test('corral tenants list|quota: show, set, clear one, clear all', () => {
  const home = tempDir();
  assert.equal(corral(home, ['keys', 'create', '--tenant', 'acme', '--scope', 'exec']).code, 0);
  const shown = corral(home, ['tenants', 'quota', 'acme', '--json']);
  assert.deepEqual(shown.json, { tenant: 'acme', quota: { sandboxes: null, concurrentExecs: null, storageBytes: null } });

  const set = corral(home, ['tenants', 'quota', 'acme', '--sandboxes', '5', '--concurrent-execs', '2', '--storage', '1g']);
  assert.equal(set.code, 0, set.stderr);
  assert.equal(set.stdout, 'set the quota of acme: sandboxes 5, concurrent execs 2, storage 1.0 GiB\n');
  const one = corral(home, ['tenants', 'quota', 'acme', '--concurrent-execs', 'none', '--json']);
  assert.deepEqual(one.json.quota, { sandboxes: 5, concurrentExecs: null, storageBytes: 1024 ** 3 });

  const list = corral(home, ['tenants', 'list']);
  assert.match(list.stdout, /^TENANT\s+KEYS\s+SANDBOXES\s+CONCURRENT EXECS\s+STORAGE\nacme\s+1\s+5\s+-\s+1\.0 GiB\n$/);

  const cleared = corral(home, ['tenants', 'quota', 'acme', '--clear', '--sandboxes', '1', '--json']);
  assert.deepEqual(cleared.json.quota, { sandboxes: 1, concurrentExecs: null, storageBytes: null });
  // A quota for a tenant without keys makes its row.
  assert.equal(corral(home, ['tenants', 'quota', 'beta', '--sandboxes', '0']).code, 0);
  assert.deepEqual(corral(home, ['tenants', 'list', '--json']).json.tenants.map((t: { name: string; activeKeys: number }) => [t.name, t.activeKeys]), [['acme', 1], ['beta', 0]]);
});
