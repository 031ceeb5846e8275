import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCorral } from '../helpers.ts';

function seeded() {
  const c = openCorral();
  c.vaults.create('v');
  for (let i = 0; i < 5; i++) c.files.write('v', `/f${i}`, new TextEncoder().encode(`content ${i}`));
  return c;
}

test('every mutating operation appends one chained record', () => {
  const c = seeded();
  const records = c.store.audit.list({ limit: 1000 });
  assert.equal(records.length, 6);
  assert.deepEqual(records.map((r) => r.op), ['vault.create', 'file.write', 'file.write', 'file.write', 'file.write', 'file.write']);
  for (let i = 1; i < records.length; i++) assert.equal(records[i]!.prevHash, records[i - 1]!.hash);
  assert.equal(records[1]!.target, '/f0');
  assert.equal(records[1]!.result, 'ok');
  assert.ok(typeof records[1]!.details.commit === 'string');
  assert.deepEqual(c.store.audit.verify(), { ok: true, records: 6, headSeq: 6, problems: [] });
});

test('a failed operation is recorded with its error and changes nothing', () => {
  const c = seeded();
  const head = c.store.getVault('v').head;
  assert.throws(() => c.files.rm('v', '/missing'));
  assert.equal(c.store.getVault('v').head, head);
  const last = c.store.audit.list({ limit: 1 })[0]!;
  assert.equal(last.op, 'file.rm');
  assert.equal(last.result, 'error:PATH_NOT_FOUND');
  assert.ok(c.store.audit.verify().ok);
});

test('filters: op, path, since, limit, vault', () => {
  const c = seeded();
  assert.equal(c.store.audit.list({ op: 'file.write' }).length, 5);
  assert.deepEqual(c.store.audit.list({ path: '/f3' }).map((r) => r.target), ['/f3']);
  assert.equal(c.store.audit.list({ limit: 2 }).length, 2);
  assert.equal(c.store.audit.list({ limit: 2 })[1]!.target, '/f4');
  assert.equal(c.store.audit.list({ since: Date.now() + 60_000 }).length, 0);
  assert.equal(c.store.audit.list({ vault: 'nope' }).length, 0);
});

test('verify finds a changed record and says where', () => {
  const c = seeded();
  c.store.db.raw.exec("UPDATE audit SET target = '/evil' WHERE seq = 3");
  const v = c.store.audit.verify();
  assert.equal(v.ok, false);
  assert.deepEqual(v.problems.map((p) => [p.seq, p.problem]), [[3, 'changed']]);
});

test('verify finds a deleted record', () => {
  const c = seeded();
  c.store.db.raw.exec('DELETE FROM audit WHERE seq = 4');
  const v = c.store.audit.verify();
  assert.equal(v.ok, false);
  assert.deepEqual(v.problems.map((p) => [p.seq, p.problem]), [[5, 'deleted']]);
});

test('verify finds a deleted tail', () => {
  const c = seeded();
  c.store.db.raw.exec('DELETE FROM audit WHERE seq >= 5');
  const v = c.store.audit.verify();
  assert.equal(v.ok, false);
  assert.equal(v.problems[0]!.problem, 'tail-deleted');
  assert.equal(v.problems[0]!.seq, 6);
});

test('verify finds an inserted record even with a recomputed own hash', () => {
  const c = seeded();
  // Shift records up and forge one at seq 3 whose own hash is consistent but whose chain is not.
  c.store.db.raw.exec('UPDATE audit SET seq = seq + 100 WHERE seq >= 3');
  c.store.db.raw.exec('UPDATE audit SET seq = seq - 99 WHERE seq >= 103');
  const prev = c.store.db.raw.prepare('SELECT hash FROM audit WHERE seq = 2').get() as { hash: string };
  c.store.db.raw.prepare("INSERT INTO audit(seq, ts, actor, vault, op, target, details, result, prev_hash, hash) VALUES (3, 0, 'x', 'v', 'file.write', '/forged', '{}', 'ok', ?, 'bogus')").run(prev.hash);
  const v = c.store.audit.verify();
  assert.equal(v.ok, false);
  assert.ok(v.problems.some((p) => p.seq === 3), JSON.stringify(v.problems));
});

test('every mutating operation of every service writes exactly one audit record', async () => {
  const c = openCorral();
  const enc = (s: string) => new TextEncoder().encode(s);
  const count = () => c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM audit')!.n;
  const ops: [string, () => unknown][] = [
    ['vault.create', () => c.vaults.create('v')],
    ['vault.use', () => c.vaults.use('v')],
    ['file.write', () => c.files.write('v', '/a/b.txt', enc('x'))],
    ['file.append', () => c.files.write('v', '/a/b.txt', enc('y'), { append: true })],
    ['file.mkdir', () => c.files.mkdir('v', '/d', { parents: true })],
    ['file.symlink', () => c.files.symlink('v', 'a/b.txt', '/link')],
    ['file.cp', () => c.files.cp('v', '/a', '/a2', { recursive: true })],
    ['file.mv', () => c.files.mv('v', '/a2', '/a3')],
    ['file.touch', () => c.files.touch('v', '/t')],
    ['file.chmod', () => c.files.chmod('v', '/t', 0o755)],
    ['file.rm', () => c.files.rm('v', '/a3', { recursive: true })],
    ['file.revert', () => c.history.revert('v', '/t')],
    ['checkpoint.save', () => c.checkpoints.save('v', 'c1')],
    ['checkpoint.restore', () => c.checkpoints.restore('v', 'c1')],
    ['checkpoint.delete', () => c.checkpoints.delete('v', 'c1')],
    ['tag.add', () => c.tags.add('v', '/link', ['x'])],
    ['quota.set', () => c.vaults.setQuota('v', { maxFiles: 100 })],
    ['vault.fork', () => c.vaults.fork('v', 'f')],
    ['vault.rename', () => c.vaults.rename('f', 'g')],
    ['vault.delete', () => c.vaults.delete('g', true)],
  ];
  for (const [op, run] of ops) {
    const before = count();
    await run();
    assert.equal(count(), before + 1, `${op} wrote ${count() - before} records`);
    assert.equal(c.store.audit.list({ limit: 1 })[0]!.op, op);
  }
  assert.ok(c.store.audit.verify().ok);
});
