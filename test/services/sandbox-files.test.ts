import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { newId } from '../../src/protocol/api-schemas.ts';
import { isCorralError, type ErrorCode } from '../../src/protocol/errors.ts';
import type { Corral } from '../../src/services/corral.ts';
import type { FileChange } from '../../src/services/sandbox-files.ts';
import { OWNER } from '../../src/services/sandbox-service.ts';
import { openCorral } from '../helpers.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

function setup(): { corral: Corral; id: string; vault: string } {
  const corral = openCorral();
  corral.vaults.create('src');
  corral.files.write('src', '/a.txt', enc.encode('one two two three\n'));
  const sb = corral.sandboxes.create({ vault: 'src' });
  return { corral, id: sb.id, vault: sb.vault };
}

function fails(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isCorralError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const head = (corral: Corral, vault: string) => corral.store.getVault(vault).head;

test('write, read with ranges, append, mode, parents; every write is one commit', () => {
  const { corral, id, vault } = setup();
  const f = corral.sandboxFiles;
  const before = head(corral, vault);
  const w = f.write(id, 'src/deep/b.txt', enc.encode('hello world'), {}, OWNER);
  assert.deepEqual({ ...w, commit: typeof w.commit }, { path: '/src/deep/b.txt', size: 11, mode: 0o644, commit: 'string' });
  assert.notEqual(head(corral, vault), before);
  assert.equal(corral.store.getCommit(w.commit!).parent, before);

  const all = f.read(id, '/src/deep/b.txt', {}, OWNER);
  assert.equal(dec.decode(all.data), 'hello world');
  assert.equal(all.size, 11);
  assert.equal(all.mode, 0o644);
  assert.equal(dec.decode(f.read(id, '/src/deep/b.txt', { offset: 6 }, OWNER).data), 'world');
  assert.equal(dec.decode(f.read(id, '/src/deep/b.txt', { offset: 2, length: 3 }, OWNER).data), 'llo');
  assert.equal(dec.decode(f.read(id, '/src/deep/b.txt', { offset: 9, length: 100 }, OWNER).data), 'ld');
  assert.equal(f.read(id, '/src/deep/b.txt', { offset: 11 }, OWNER).data.length, 0);
  assert.equal(f.read(id, '/src/deep/b.txt', { length: 0 }, OWNER).data.length, 0);
  fails(() => f.read(id, '/src/deep/b.txt', { offset: 12 }, OWNER), 'INVALID_ARGUMENT', /past the end/);
  fails(() => f.read(id, '/src/deep/b.txt', { offset: -1 }, OWNER), 'INVALID_ARGUMENT');
  fails(() => f.read(id, '/src', {}, OWNER), 'IS_A_DIRECTORY');
  fails(() => f.read(id, '/nope', {}, OWNER), 'PATH_NOT_FOUND');

  const a = f.write(id, '/src/deep/b.txt', enc.encode('!'), { append: true, mode: 0o600 }, OWNER);
  assert.equal(a.size, 12);
  assert.equal(a.mode, 0o600);
  assert.equal(dec.decode(corral.files.cat(vault, '/src/deep/b.txt')), 'hello world!');

  fails(() => f.write(id, '/missing/c.txt', enc.encode('x'), { parents: false }, OWNER), 'PATH_NOT_FOUND', /does not exist/);
  fails(() => f.write(id, '/a.txt/c.txt', enc.encode('x'), { parents: false }, OWNER), 'NOT_A_DIRECTORY');
  assert.equal(f.write(id, '/src/c.txt', enc.encode('x'), { parents: false }, OWNER).size, 1);
  fails(() => f.write(id, '/x', enc.encode('x'), { mode: 0o4755 }, OWNER), 'INVALID_ARGUMENT', /0777/);
  fails(() => f.write(id, '/', enc.encode('x'), {}, OWNER), 'IS_A_DIRECTORY');
  fails(() => f.write(id, '../../etc/passwd', enc.encode('x'), {}, OWNER), 'INVALID_PATH');
  fails(() => f.write(id, '/a\0b', enc.encode('x'), {}, OWNER), 'INVALID_PATH');
  // Writes land in the sandbox's fork only, as commits and audit records.
  assert.equal(corral.files.ls('src', '/').length, 1);
  const audited = corral.store.db.all<{ op: string }>("SELECT op FROM audit WHERE vault = ? AND op LIKE 'file.%' AND result = 'ok'", vault).map((r) => r.op);
  assert.deepEqual(audited, ['file.write', 'file.append', 'file.write']);
});

test('edit: exact replacement, counts, replaceAll, no regex, refusals change nothing', () => {
  const { corral, id, vault } = setup();
  const f = corral.sandboxFiles;
  const one = f.edit(id, { path: '/a.txt', oldText: 'one', newText: 'ONE' }, OWNER);
  assert.equal(one.replacements, 1);
  assert.ok(one.commit);
  assert.equal(dec.decode(corral.files.cat(vault, '/a.txt')), 'ONE two two three\n');

  const start = head(corral, vault);
  fails(() => f.edit(id, { path: '/a.txt', oldText: 'two', newText: '2' }, OWNER), 'EDIT_AMBIGUOUS', /2 times/);
  fails(() => f.edit(id, { path: '/a.txt', oldText: 'four', newText: '4' }, OWNER), 'EDIT_NO_MATCH');
  // Regex metacharacters are plain text.
  fails(() => f.edit(id, { path: '/a.txt', oldText: 't.o', newText: 'x' }, OWNER), 'EDIT_NO_MATCH');
  fails(() => f.edit(id, { path: '/a.txt', oldText: '', newText: 'x' }, OWNER), 'INVALID_ARGUMENT');
  fails(() => f.edit(id, { path: '/', oldText: 'a', newText: 'x' }, OWNER), 'IS_A_DIRECTORY');
  fails(() => f.edit(id, { path: '/nope', oldText: 'a', newText: 'x' }, OWNER), 'PATH_NOT_FOUND');
  try {
    f.edit(id, { path: '/a.txt', oldText: 'two', newText: '2' }, OWNER);
  } catch (e) {
    assert.ok(isCorralError(e));
    assert.equal(e.details.matches, 2);
  }
  assert.equal(head(corral, vault), start);

  const all = f.edit(id, { path: '/a.txt', oldText: 'two', newText: '$&$1', replaceAll: true }, OWNER);
  assert.equal(all.replacements, 2);
  assert.equal(dec.decode(corral.files.cat(vault, '/a.txt')), 'ONE $&$1 $&$1 three\n');
  // Deleting text, multi-byte text, and a replacement that contains the needle.
  f.edit(id, { path: '/a.txt', oldText: ' three', newText: '' }, OWNER);
  f.edit(id, { path: '/a.txt', oldText: 'ONE', newText: 'ONE ÉTÉ ONE' }, OWNER);
  assert.equal(dec.decode(corral.files.cat(vault, '/a.txt')), 'ONE ÉTÉ ONE $&$1 $&$1\n');
  f.edit(id, { path: '/a.txt', oldText: 'ÉTÉ', newText: 'été' }, OWNER);
  assert.equal(dec.decode(corral.files.cat(vault, '/a.txt')), 'ONE été ONE $&$1 $&$1\n');
  // Binary bytes around the text are kept as they are.
  corral.files.write(vault, '/bin', new Uint8Array([0xff, 0x00, 0x41, 0x42, 0xfe]));
  f.edit(id, { path: '/bin', oldText: 'AB', newText: 'C' }, OWNER);
  assert.deepEqual([...corral.files.cat(vault, '/bin')], [0xff, 0x00, 0x43, 0xfe]);
  corral.files.symlink(vault, 'a.txt', '/link');
  fails(() => f.edit(id, { path: '/link', oldText: 'ONE', newText: 'x' }, OWNER), 'IS_A_SYMLINK');
});

test('list, stat, mkdir, remove, move', () => {
  const { corral, id, vault } = setup();
  const f = corral.sandboxFiles;
  f.write(id, '/d/x.txt', enc.encode('x'), {}, OWNER);
  f.write(id, '/d/.hidden', enc.encode('h'), {}, OWNER);
  f.write(id, '/d/sub/y.txt', enc.encode('yy'), {}, OWNER);
  corral.files.symlink(vault, 'x.txt', '/d/ln');

  const top = f.list(id, '/d', {}, OWNER);
  assert.deepEqual(top.entries.map((e) => [e.path, e.kind]), [['/d/.hidden', 'file'], ['/d/ln', 'symlink'], ['/d/sub', 'dir'], ['/d/x.txt', 'file']]);
  assert.equal(top.truncated, false);
  assert.equal(top.entries[1]!.target, 'x.txt');
  assert.equal(top.entries[2]!.files, 1);
  assert.ok(!Number.isNaN(Date.parse(top.entries[0]!.mtime)));
  const deep = f.list(id, '/', { recursive: true }, OWNER);
  assert.deepEqual(deep.entries.map((e) => e.path), ['/a.txt', '/d', '/d/.hidden', '/d/ln', '/d/sub', '/d/sub/y.txt', '/d/x.txt']);
  const cut = f.list(id, '/', { recursive: true, limit: 3 }, OWNER);
  assert.deepEqual(cut.entries.map((e) => e.path), ['/a.txt', '/d', '/d/.hidden']);
  assert.equal(cut.truncated, true);
  assert.deepEqual(f.list(id, '/d/x.txt', {}, OWNER).entries.map((e) => e.path), ['/d/x.txt']);
  fails(() => f.list(id, '/', { limit: 0 }, OWNER), 'INVALID_ARGUMENT');
  fails(() => f.list(id, '/', { limit: 10_001 }, OWNER), 'INVALID_ARGUMENT');
  fails(() => f.list(id, '/nope', {}, OWNER), 'PATH_NOT_FOUND');

  const st = f.stat(id, '/d/ln', OWNER);
  assert.equal(st.kind, 'symlink');
  assert.equal(st.target, 'x.txt');
  assert.equal(f.stat(id, '/', OWNER).kind, 'dir');
  assert.equal(f.stat(id, '/', OWNER).name, '');

  assert.ok(f.mkdir(id, '/e', {}, OWNER).commit);
  fails(() => f.mkdir(id, '/e', {}, OWNER), 'PATH_EXISTS');
  assert.equal(f.mkdir(id, '/e', { parents: true }, OWNER).commit, null);
  fails(() => f.mkdir(id, '/p/q', {}, OWNER), 'PATH_NOT_FOUND');
  assert.equal(f.mkdir(id, '/p/q', { parents: true }, OWNER).path, '/p/q');

  // move: exactly to `to`; an existing file only with overwrite; a directory is never replaced nor entered.
  assert.deepEqual({ ...f.move(id, '/d/x.txt', '/e/x2.txt', {}, OWNER), commit: null }, { from: '/d/x.txt', to: '/e/x2.txt', commit: null });
  fails(() => f.move(id, '/e/x2.txt', '/a.txt', {}, OWNER), 'PATH_EXISTS', /overwrite/);
  fails(() => f.move(id, '/e/x2.txt', '/p', { overwrite: true }, OWNER), 'PATH_EXISTS', /directory/);
  fails(() => f.move(id, '/nope', '/z', {}, OWNER), 'PATH_NOT_FOUND');
  fails(() => f.move(id, '/d', '/d/sub/inside', {}, OWNER), 'INVALID_ARGUMENT');
  f.move(id, '/e/x2.txt', '/a.txt', { overwrite: true }, OWNER);
  assert.equal(dec.decode(corral.files.cat(vault, '/a.txt')), 'x');
  f.move(id, '/d', '/moved/d', {}, OWNER);
  assert.equal(dec.decode(corral.files.cat(vault, '/moved/d/sub/y.txt')), 'yy');

  fails(() => f.remove(id, '/moved', {}, OWNER), 'IS_A_DIRECTORY');
  assert.equal(f.remove(id, '/moved', { recursive: true }, OWNER).removed, 3);
  fails(() => f.remove(id, '/moved', {}, OWNER), 'PATH_NOT_FOUND');
  fails(() => f.remove(id, '/', { recursive: true }, OWNER), 'INVALID_PATH');
});

test('scope: an unknown sandbox and another tenant\'s are not found; a destroyed one is SANDBOX_STATE', () => {
  const { corral, id } = setup();
  const f = corral.sandboxFiles;
  fails(() => f.stat(newId('sbx'), '/', OWNER), 'SANDBOX_NOT_FOUND');
  fails(() => f.stat(id, '/', { tenant: 'other' }), 'SANDBOX_NOT_FOUND');
  const mine = corral.sandboxes.create({}, { tenant: 'acme' });
  f.write(mine.id, '/t.txt', enc.encode('t'), {}, { tenant: 'acme' });
  fails(() => f.read(mine.id, '/t.txt', {}, { tenant: 'other' }), 'SANDBOX_NOT_FOUND');
  assert.equal(dec.decode(f.read(mine.id, '/t.txt', {}, OWNER).data), 't');

  corral.sandboxes.destroy(id);
  fails(() => f.stat(id, '/', OWNER), 'SANDBOX_STATE', /destroyed/);
  fails(() => f.write(id, '/x', enc.encode('x'), {}, OWNER), 'SANDBOX_STATE');
  fails(() => f.watch(id, '/', OWNER), 'SANDBOX_STATE');
});

test('download and upload: a tar round trip; hostile entries fail the whole upload', async () => {
  const { corral, id, vault } = setup();
  const f = corral.sandboxFiles;
  f.write(id, '/tree/a/b.txt', enc.encode('bee'), { mode: 0o755 }, OWNER);
  f.write(id, '/tree/c.txt', enc.encode('sea'), {}, OWNER);
  corral.files.symlink(vault, 'c.txt', '/tree/ln');

  const d = f.download(id, '/tree', OWNER);
  assert.equal(d.kind, 'dir');
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (b: Buffer) => chunks.push(b));
  const exported = await d.pipe(out);
  assert.equal(exported.files, 2);
  const tar = Buffer.concat(chunks);

  const up = await f.upload(id, '/copy', Readable.from([tar]), OWNER);
  assert.deepEqual({ files: up.files, symlinks: up.symlinks, bytes: up.bytes }, { files: 2, symlinks: 1, bytes: 6 });
  assert.equal(dec.decode(corral.files.cat(vault, '/copy/a/b.txt')), 'bee');
  assert.equal(corral.files.stat(vault, '/copy/a/b.txt').mode, 0o755);
  assert.equal(corral.files.stat(vault, '/copy/ln').target, 'c.txt');

  const hostile = async (entries: { name: string; type?: 'file' | 'symlink'; linkname?: string; body?: string }[]) => {
    const p = pack();
    for (const e of entries) {
      if (e.type === 'symlink') p.entry({ name: e.name, type: 'symlink', linkname: e.linkname ?? '' });
      else p.entry({ name: e.name, type: 'file' }, e.body ?? 'x');
    }
    p.finalize();
    const start = head(corral, vault);
    await assert.rejects(f.upload(id, '/in', p as unknown as Readable, OWNER), (e: unknown) => isCorralError(e, 'INVALID_PATH'));
    assert.equal(head(corral, vault), start);
  };
  await hostile([{ name: 'ok.txt' }, { name: '/etc/passwd' }]);
  await hostile([{ name: 'ok.txt' }, { name: 'a/../../escape' }]);
  await hostile([{ name: 'l', type: 'symlink', linkname: '/etc' }, { name: 'l/passwd' }]);
  await assert.rejects(f.upload(id, '/a.txt', Readable.from([tar]), OWNER), (e: unknown) => isCorralError(e, 'NOT_A_DIRECTORY'));
  fails(() => f.download(id, '/nope', OWNER), 'PATH_NOT_FOUND');
});

test('watch: created, modified and deleted paths below the directory, each with its commit; ends with the sandbox', async () => {
  const { corral, id } = setup();
  const f = corral.sandboxFiles;
  f.mkdir(id, '/w', {}, OWNER);
  const watch = f.watch(id, '/w', OWNER, { intervalMs: 10 });
  fails(() => f.watch(id, '/a.txt', OWNER), 'NOT_A_DIRECTORY');
  fails(() => f.watch(id, '/nope', OWNER), 'PATH_NOT_FOUND');
  const stop = new AbortController();
  const seen: FileChange[] = [];
  const done = (async () => {
    for await (const batch of watch.changes(stop.signal)) {
      seen.push(...batch);
      if (seen.length >= 4) stop.abort();
    }
  })();
  const c1 = f.write(id, '/w/new.txt', enc.encode('1'), {}, OWNER).commit;
  f.write(id, '/outside.txt', enc.encode('1'), {}, OWNER);
  const c2 = f.write(id, '/w/new.txt', enc.encode('2'), {}, OWNER).commit;
  const c3 = f.write(id, '/w/sub/deep.txt', enc.encode('3'), {}, OWNER).commit;
  const c4 = f.remove(id, '/w/new.txt', {}, OWNER).commit;
  await done;
  assert.deepEqual(seen, [
    { path: '/w/new.txt', kind: 'created', commit: c1 },
    { path: '/w/new.txt', kind: 'modified', commit: c2 },
    { path: '/w/sub/deep.txt', kind: 'created', commit: c3 },
    { path: '/w/new.txt', kind: 'deleted', commit: c4 },
  ]);

  // The sandbox destroyed: the watch ends with SANDBOX_STATE.
  const again = f.watch(id, '/', OWNER, { intervalMs: 10 });
  const it = again.changes(new AbortController().signal);
  corral.sandboxes.destroy(id);
  await assert.rejects(it.next(), (e: unknown) => isCorralError(e, 'SANDBOX_STATE'));
});
