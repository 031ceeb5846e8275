import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isId, newId } from '../../src/protocol/api-schemas.ts';
import { isCorralError, type ErrorCode } from '../../src/protocol/errors.ts';
import type { Corral } from '../../src/services/corral.ts';
import type { SandboxSpec } from '../../src/services/sandbox-service.ts';
import { openCorral } from '../helpers.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

function seeded(): Corral {
  const corral = openCorral();
  corral.vaults.create('src');
  corral.files.write('src', '/a.txt', enc.encode('from the source\n'));
  return corral;
}

function read(corral: Corral, vault: string, path: string): string | null {
  try {
    return dec.decode(corral.files.cat(vault, path));
  } catch (e) {
    if (isCorralError(e, 'PATH_NOT_FOUND')) return null;
    throw e;
  }
}

function counts(corral: Corral): { sandboxes: number; vaults: number } {
  return {
    sandboxes: corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM sandboxes')!.n,
    vaults: corral.vaults.list().length,
  };
}

test('create: a fork of the vault, rows only; an exec changes the fork, not the source, and is recorded', async () => {
  const corral = seeded();
  const sb = corral.sandboxes.create({ vault: 'src', name: 'work', backend: 'namespace', policy: 'permissive', env: { GREETING: 'hello' }, labels: { team: 'a' }, limits: { pids: 256 } });
  assert.ok(isId('sbx', sb.id));
  assert.equal(sb.state, 'ready');
  assert.equal(sb.sourceVault, 'src');
  assert.equal(sb.forked, true);
  assert.equal(sb.vault, `src-${sb.id.slice(-12)}`);
  assert.equal(sb.network, 'none');
  assert.equal(sb.expiresAt, null);
  assert.ok(!Number.isNaN(Date.parse(sb.createdAt)));
  assert.deepEqual(corral.sandboxes.get('work'), sb);
  assert.deepEqual(corral.sandboxes.get(sb.id), sb);

  const r = await corral.execs.run(sb.id, { shell: 'echo "$GREETING $EXTRA" > b.txt; cat a.txt; cat', env: { EXTRA: 'there' }, stdin: enc.encode('piped\n') });
  assert.equal(r.status, 'completed', JSON.stringify(r.error));
  assert.equal(r.exitCode, 0);
  assert.equal(r.backend, 'namespace');
  assert.equal(r.vault, sb.vault);
  assert.equal(r.stdout, 'from the source\npiped\n');
  assert.deepEqual(r.changes?.added.map((c) => c.path), ['/b.txt']);
  assert.equal(r.limits?.pids, 256);
  assert.equal(read(corral, sb.vault, '/b.txt'), 'hello there\n');
  assert.equal(read(corral, 'src', '/b.txt'), null);

  const rec = corral.execs.get(r.id);
  assert.equal(rec.id, r.id);
  assert.equal(rec.sandbox, sb.id);
  assert.equal(rec.state, 'completed');
  assert.equal(rec.background, false);
  assert.equal(rec.exitCode, 0);
  assert.equal(rec.stdoutBytes, Buffer.byteLength(r.stdout));
  assert.deepEqual(rec.result, r);
  assert.ok(isCorralError(catchError(() => corral.execs.get(newId('exec'))), 'EXEC_NOT_FOUND'));
  assert.ok(isCorralError(catchError(() => corral.execs.get('exec_../x')), 'INVALID_ARGUMENT'));
});

test('fork: false works on the vault itself; no vault: a new empty one named after the sandbox', async () => {
  const corral = seeded();
  const direct = corral.sandboxes.create({ vault: 'src', fork: false, backend: 'namespace', policy: 'permissive' });
  assert.equal(direct.vault, 'src');
  assert.equal(direct.forked, false);
  const r = await corral.execs.run(direct.id, { argv: ['sh', '-c', 'echo direct > c.txt'] });
  assert.equal(r.status, 'completed', JSON.stringify(r.error));
  assert.equal(read(corral, 'src', '/c.txt'), 'direct\n');
  corral.sandboxes.destroy(direct.id);
  assert.ok(corral.store.findVault('src'), 'fork: false never deletes the vault');

  const fresh = corral.sandboxes.create({});
  assert.equal(fresh.vault, fresh.id);
  assert.equal(fresh.sourceVault, null);
  assert.equal(fresh.forked, true);
  assert.equal(corral.vaults.info(fresh.vault).files, 0);
  corral.sandboxes.destroy(fresh.id);
  assert.equal(corral.store.findVault(fresh.vault), undefined);
});

test('list filters by state and labels; destroy deletes the fork unless keepFork, keeps the row, and is idempotent', async () => {
  const corral = seeded();
  const a = corral.sandboxes.create({ vault: 'src', labels: { team: 'a', env: 'ci' } });
  const b = corral.sandboxes.create({ vault: 'src', labels: { team: 'b' } });
  const c = corral.sandboxes.create({ vault: 'src', labels: { team: 'a', note: 'x=y' } });
  const ids = (l: { id: string }[]) => l.map((s) => s.id);
  assert.deepEqual(ids(corral.sandboxes.list()), [a.id, b.id, c.id]);
  assert.deepEqual(ids(corral.sandboxes.list({ label: 'team=a' })), [a.id, c.id]);
  assert.deepEqual(ids(corral.sandboxes.list({ label: { team: 'a', env: 'ci' } })), [a.id]);
  assert.deepEqual(ids(corral.sandboxes.list({ label: 'note=x=y' })), [c.id]);
  assert.ok(isCorralError(catchError(() => corral.sandboxes.list({ label: 'nokey' })), 'INVALID_ARGUMENT'));

  // A warm checkout exists once an exec ran; destroy removes it with the fork.
  await corral.execs.run(a.id, { argv: ['true'] });
  const warm = corral.checkouts.list(a.vault).filter((x) => x.kind === 'warm');
  assert.equal(warm.length, 1);
  const gone = corral.sandboxes.destroy(a.id);
  assert.equal(gone.state, 'destroyed');
  assert.equal(corral.store.findVault(a.vault), undefined);
  for (const w of warm) assert.equal(corral.checkouts.find(w.dir), undefined);
  const kept = corral.sandboxes.destroy(b.id, { keepFork: true });
  assert.equal(kept.state, 'destroyed');
  assert.ok(corral.store.findVault(b.vault));
  assert.deepEqual(corral.sandboxes.destroy(b.id), kept, 'destroying twice changes nothing');

  assert.deepEqual(ids(corral.sandboxes.list()), [c.id]);
  assert.deepEqual(ids(corral.sandboxes.list({ state: 'destroyed' })), [a.id, b.id]);
  assert.equal(corral.sandboxes.get(a.id).state, 'destroyed');
  await assert.rejects(corral.execs.run(a.id, { argv: ['true'] }), (e) => isCorralError(e, 'SANDBOX_STATE'));
  assert.ok(corral.store.findVault('src'));
});

test('a name is unique among live sandboxes and free again once destroyed', () => {
  const corral = seeded();
  const first = corral.sandboxes.create({ vault: 'src', name: 'dev' });
  assert.ok(isCorralError(catchError(() => corral.sandboxes.create({ vault: 'src', name: 'dev' })), 'CONFLICT'));
  corral.sandboxes.destroy('dev');
  const second = corral.sandboxes.create({ vault: 'src', name: 'dev' });
  assert.equal(corral.sandboxes.get('dev').id, second.id);
  assert.equal(corral.sandboxes.get(first.id).state, 'destroyed');
});

test('names are per tenant: each tenant and the owner may use the same name; a name resolves to the caller\'s own', () => {
  const corral = openCorral();
  const acme = { tenant: 'acme' };
  const globex = { tenant: 'globex' };
  const a = corral.sandboxes.create({ backend: 'host', name: 'dev' }, acme);
  const g = corral.sandboxes.create({ backend: 'host', name: 'dev' }, globex);
  assert.ok(isCorralError(catchError(() => corral.sandboxes.create({ backend: 'host', name: 'dev' }, acme)), 'CONFLICT'));
  assert.equal(corral.sandboxes.get('dev', acme).id, a.id);
  assert.equal(corral.sandboxes.get('dev', globex).id, g.id);
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get('dev', { tenant: 'initech' })), 'SANDBOX_NOT_FOUND'));
  // The owner sees every tenant: two tenants' 'dev' is ambiguous (use the id), its own wins.
  const ambiguous = catchError(() => corral.sandboxes.get('dev'));
  assert.ok(isCorralError(ambiguous, 'CONFLICT') && /use its id/.test(ambiguous.message));
  const own = corral.sandboxes.create({ backend: 'host', name: 'dev' });
  assert.equal(corral.sandboxes.get('dev').id, own.id);
  corral.sandboxes.destroy(own.id);
  corral.sandboxes.destroy('dev', {}, globex);
  assert.equal(corral.sandboxes.get('dev').id, a.id, 'one left: the owner reaches it by name');
});

test('ttl: an expired sandbox is destroyed when read, answers SANDBOX_NOT_FOUND, and its fork goes', async () => {
  const corral = seeded();
  const sb = corral.sandboxes.create({ vault: 'src', ttlSeconds: 60, name: 'short' });
  assert.equal(Date.parse(sb.expiresAt!) - Date.parse(sb.createdAt), 60_000);
  const other = corral.sandboxes.create({ vault: 'src', ttlSeconds: 60 });
  corral.store.db.run('UPDATE sandboxes SET expires_at = ? WHERE id IN (?, ?)', Date.now() - 1, sb.id, other.id);
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get(sb.id)), 'SANDBOX_NOT_FOUND'));
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get('short')), 'SANDBOX_NOT_FOUND'));
  await assert.rejects(corral.execs.run(sb.id, { argv: ['true'] }), (e) => isCorralError(e, 'SANDBOX_NOT_FOUND'));
  assert.equal(corral.store.findVault(sb.vault), undefined);
  // list sweeps the others.
  assert.deepEqual(corral.sandboxes.list(), []);
  assert.equal(corral.store.findVault(other.vault), undefined);
  assert.deepEqual(corral.sandboxes.list({ state: 'destroyed' }).map((s) => s.id).sort(), [sb.id, other.id].sort());
});

test('bad specs answer with a code and create nothing', () => {
  const corral = seeded();
  const before = counts(corral);
  const cases: [SandboxSpec, ErrorCode][] = [
    [{ vault: '../etc' }, 'INVALID_NAME'],
    [{ vault: 'missing' }, 'VAULT_NOT_FOUND'],
    [{ vault: 'missing', fork: false }, 'VAULT_NOT_FOUND'],
    [{ name: 'sbx_looks_like_an_id' }, 'INVALID_NAME'],
    [{ name: 'a b' }, 'INVALID_NAME'],
    [{ fork: 'yes' as unknown as boolean }, 'INVALID_ARGUMENT'],
    [{ backend: 'docker' as 'host' }, 'INVALID_ARGUMENT'],
    [{ policy: '/etc/corral/policy.yaml' }, 'POLICY_INVALID'],
    [{ policy: 'nope' }, 'POLICY_INVALID'],
    [{ network: 'bridge' as 'host' }, 'INVALID_ARGUMENT'],
    [{ env: { '1BAD': 'x' } }, 'INVALID_ARGUMENT'],
    [{ env: { 'A=B': 'x' } }, 'INVALID_ARGUMENT'],
    [{ env: { OK: 'nul\0' } }, 'INVALID_ARGUMENT'],
    [{ env: { OK: 42 as unknown as string } }, 'INVALID_ARGUMENT'],
    [{ env: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`V${i}`, 'x'])) }, 'INVALID_ARGUMENT'],
    [{ labels: { '': 'x' } }, 'INVALID_ARGUMENT'],
    [{ labels: { ['k'.repeat(64)]: 'x' } }, 'INVALID_ARGUMENT'],
    [{ labels: { k: 'line\nbreak' } }, 'INVALID_ARGUMENT'],
    [{ labels: { k: 'v'.repeat(257) } }, 'INVALID_ARGUMENT'],
    [{ ttlSeconds: 0 }, 'INVALID_ARGUMENT'],
    [{ ttlSeconds: 7 * 24 * 3600 + 1 }, 'INVALID_ARGUMENT'],
    [{ ttlSeconds: 1.5 }, 'INVALID_ARGUMENT'],
    [{ limits: { memoryBytes: -1 } }, 'INVALID_ARGUMENT'],
    [{ limits: { pids: 0 } }, 'INVALID_ARGUMENT'],
    [{ limits: { cpuPercent: 1.5 } }, 'INVALID_ARGUMENT'],
    [{ limits: { openFiles: 10 } as never }, 'INVALID_ARGUMENT'],
  ];
  for (const [spec, code] of cases) {
    const e = catchError(() => corral.sandboxes.create(spec));
    assert.ok(isCorralError(e, code), `${JSON.stringify(spec).slice(0, 80)}: ${String(e)}`);
  }
  assert.deepEqual(counts(corral), before);
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get('sbx_nope')), 'INVALID_ARGUMENT'));
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get(newId('sbx'))), 'SANDBOX_NOT_FOUND'));
  assert.ok(isCorralError(catchError(() => corral.sandboxes.get('nobody')), 'SANDBOX_NOT_FOUND'));
});

test('exec: a bad request env is refused before anything runs', async () => {
  const corral = seeded();
  const sb = corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'permissive' });
  await assert.rejects(corral.execs.run(sb.id, { argv: ['true'], env: { 'BAD NAME': 'x' } }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.equal(corral.store.db.get<{ n: number }>('SELECT count(*) AS n FROM execs')!.n, 0);
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

test('a tenant storage quota: writes and execs past it are refused with QUOTA_EXCEEDED; other tenants are not affected', () => {
  const corral = openCorral();
  corral.keys.setQuota('acme', { storageBytes: 100 });
  const scope = { tenant: 'acme' };
  const sb = corral.sandboxes.create({ backend: 'host', policy: 'permissive' }, scope);
  corral.sandboxFiles.write(sb.id, '/a.txt', new Uint8Array(60), {}, scope);
  const over = catchError(() => corral.sandboxFiles.write(sb.id, '/b.txt', new Uint8Array(50), {}, scope));
  assert.ok(isCorralError(over, 'QUOTA_EXCEEDED'), String(over));
  assert.equal(over.details.quota, 'storage');
  corral.keys.setQuota('acme', { storageBytes: 50 });
  assert.ok(isCorralError(catchError(() => corral.execs.start(sb.id, { argv: ['true'] }, scope)), 'QUOTA_EXCEEDED'));
  // The owner and other tenants are not limited by acme's quota.
  const mine = corral.sandboxes.create({ backend: 'host', policy: 'permissive' });
  corral.sandboxFiles.write(mine.id, '/big.txt', new Uint8Array(500), {}, { tenant: null });
});
