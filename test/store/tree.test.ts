import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCorral } from '../helpers.ts';
import { diffTrees, lookup, walkTree } from '../../src/store/tree-diff.ts';
import { EMPTY_TREE, decodeTree, encodeTree } from '../../src/store/object-store.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

const enc = (s: string) => new TextEncoder().encode(s);

test('tree encoding round-trips and is canonical (sorted by name)', () => {
  const entries = [
    { name: 'b', kind: 'file' as const, mode: 0o755, hash: 'h1', size: 3, mtime: 5 },
    { name: 'a', kind: 'dir' as const, mode: 0o755, hash: 'h2', size: 10, mtime: 6, files: 2 },
    { name: 'c', kind: 'symlink' as const, mode: 0o777, hash: 'h3', size: 4, mtime: 7 },
  ];
  const text = encodeTree(entries);
  assert.equal(text, encodeTree([...entries].reverse()));
  assert.deepEqual(decodeTree(text).map((e) => e.name), ['a', 'b', 'c']);
  assert.deepEqual(decodeTree(text)[0], entries[1]);
});

test('directory entries carry totals, so a vault knows its size in O(1)', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a/b/one', enc('12345'));
  c.files.write('v', '/a/two', enc('123'));
  c.files.symlink('v', 'b/one', '/a/link');
  const head = c.store.getCommit(c.store.getVault('v').head);
  assert.equal(head.files, 3);
  assert.equal(head.size, 5 + 3 + 5);
  const a = lookup(c.store.objects, head.tree, '/a')!;
  assert.equal(a.files, 3);
  assert.equal(lookup(c.store.objects, head.tree, '/a/b')!.size, 5);
});

test('unchanged subtrees are shared between commits', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/big/x', enc('x'));
  c.files.write('v', '/big/y', enc('y'));
  const before = c.store.getCommit(c.store.getVault('v').head);
  c.files.write('v', '/other/z', enc('z'));
  const after = c.store.getCommit(c.store.getVault('v').head);
  assert.equal(lookup(c.store.objects, before.tree, '/big')!.hash, lookup(c.store.objects, after.tree, '/big')!.hash);
});

test('diff reports added, modified (content and mode), deleted files with sizes, and descends only into changed subtrees', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/keep/a', enc('same'));
  c.files.write('v', '/mod', enc('old'));
  c.files.write('v', '/chmod', enc('x'));
  c.files.write('v', '/gone/deep/file', enc('bye'));
  const a = c.store.getCommit(c.store.getVault('v').head).tree;
  c.files.write('v', '/mod', enc('newer'));
  c.files.chmod('v', '/chmod', 0o755);
  c.files.rm('v', '/gone', { recursive: true });
  c.files.write('v', '/new/file', enc('hello'));
  c.files.touch('v', '/keep/a');
  const b = c.store.getCommit(c.store.getVault('v').head).tree;
  const changes = diffTrees(c.store.objects, a, b);
  const byPath = Object.fromEntries(changes.map((x) => [x.path, x]));
  assert.deepEqual(Object.keys(byPath).sort(), ['/chmod', '/gone/deep/file', '/mod', '/new/file']);
  assert.equal(byPath['/mod']!.change, 'modified');
  assert.equal(byPath['/mod']!.oldSize, 3);
  assert.equal(byPath['/mod']!.newSize, 5);
  assert.equal(byPath['/chmod']!.newMode, 0o755);
  assert.equal(byPath['/gone/deep/file']!.change, 'deleted');
  assert.equal(byPath['/new/file']!.change, 'added');
  assert.deepEqual(diffTrees(c.store.objects, b, b), []);
  assert.equal(diffTrees(c.store.objects, EMPTY_TREE, b).length, 4);
});

test('a file replaced by a directory is a delete plus adds', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/x', enc('file'));
  const a = c.store.getCommit(c.store.getVault('v').head).tree;
  c.files.rm('v', '/x');
  c.files.write('v', '/x/inner', enc('now a dir'));
  const b = c.store.getCommit(c.store.getVault('v').head).tree;
  assert.deepEqual(diffTrees(c.store.objects, a, b).map((x) => [x.path, x.change]), [['/x', 'deleted'], ['/x/inner', 'added']]);
});

test('walkTree honours maxDepth', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a/b/c/d', enc('1'));
  const root = c.store.getCommit(c.store.getVault('v').head).tree;
  const seen: string[] = [];
  walkTree(c.store.objects, root, '/', (p) => void seen.push(p), { maxDepth: 1 });
  assert.deepEqual(seen, ['/a', '/a/b']);
});

test('symlinks are entries: never followed for writes, followed for reads only inside the vault', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/real/file.txt', enc('inside'));
  c.files.symlink('v', '../real/file.txt', '/links/ok');
  c.files.symlink('v', '/etc/passwd', '/links/abs');
  c.files.symlink('v', '../../../etc/passwd', '/links/escape');
  c.files.symlink('v', 'loop2', '/links/loop1');
  c.files.symlink('v', 'loop1', '/links/loop2');
  c.files.symlink('v', 'real', '/dirlink');
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/links/ok')), 'inside');
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/dirlink/file.txt')), 'inside');
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return isCorralError(e) ? e.code : 'other';
    }
    return 'none';
  };
  assert.equal(code(() => c.files.cat('v', '/links/abs')), 'INVALID_PATH');
  assert.equal(code(() => c.files.cat('v', '/links/escape')), 'INVALID_PATH');
  assert.equal(code(() => c.files.cat('v', '/links/loop1')), 'SYMLINK_LOOP');
  assert.equal(code(() => c.files.write('v', '/links/ok', enc('x'))), 'IS_A_SYMLINK');
  assert.equal(code(() => c.files.write('v', '/dirlink/new', enc('x'))), 'IS_A_SYMLINK');
  const st = c.files.stat('v', '/links/abs');
  assert.equal(st.kind, 'symlink');
  assert.equal(st.target, '/etc/passwd');
  assert.deepEqual(c.files.ls('v', '/links').map((e) => [e.name, e.kind, e.target]), [
    ['abs', 'symlink', '/etc/passwd'],
    ['escape', 'symlink', '../../../etc/passwd'],
    ['loop1', 'symlink', 'loop2'],
    ['loop2', 'symlink', 'loop1'],
    ['ok', 'symlink', '../real/file.txt'],
  ]);
});

test('large directories are sharded canonically: same entries, same hash, whatever the order of edits', () => {
  const c = openCorral();
  c.vaults.create('a');
  c.vaults.create('b');
  const names = Array.from({ length: 700 }, (_, i) => `file-${i}`);
  // a: written in order, one file per commit; b: in reverse, in one import-like mutate, then churned.
  for (const n of names) c.files.write('a', `/big/${n}`, enc(n));
  c.store.mutate(c.caller, 'b', { op: 'test', message: 'bulk' }, (ed) => {
    ed.mkdirs('/big');
    for (const n of [...names].reverse()) {
      const blob = c.store.objects.putBlob(enc(n));
      ed.set(`/big/${n}`, { kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: 0 });
    }
    for (const n of names.slice(0, 50)) ed.set(`/big/extra-${n}`, { kind: 'file', mode: 0o644, hash: c.store.objects.putBlob(enc('x')).hash, size: 1, mtime: 0 });
  });
  for (const n of names.slice(0, 50)) c.files.rm('b', `/big/extra-${n}`);
  const listA = c.files.ls('a', '/big').map((e) => [e.name, e.hash, e.size]);
  const listB = c.files.ls('b', '/big').map((e) => [e.name, e.hash, e.size]);
  assert.deepEqual(listA, listB);
  assert.equal(listA.length, 700);
  assert.deepEqual(listA.slice(0, 3).map((x) => x[0]), ['file-0', 'file-1', 'file-10']);
  // mtimes differ, so compare the shapes through a tree built from identical entries.
  const entries = c.store.objects.getTree(lookup(c.store.objects, c.store.headTree('a'), '/big')!.hash);
  const h1 = c.store.objects.putTree(entries);
  const h2 = c.store.objects.putTree([...entries].reverse());
  assert.equal(h1, h2);
  assert.ok(c.store.objects.treeRows(h1).length > 16, 'a 700-entry directory is stored in shards');
  assert.equal(c.store.objects.totals(h1).count, 700);
  // Shrinking below a shard's size collapses back to a single row.
  const small = c.store.objects.editTree(h1, new Map(entries.slice(10).map((e) => [e.name, null])));
  assert.equal(c.store.objects.treeRows(small.hash).length, 1);
  assert.equal(small.hash, c.store.objects.putTree(entries.slice(0, 10)));
  // Reads go through the shards.
  assert.equal(new TextDecoder().decode(c.files.cat('a', '/big/file-699')), 'file-699');
  assert.equal(c.store.getCommit(c.store.getVault('a').head).files, 700);
  // Diff across a sharded directory finds exactly the change.
  const before = c.store.headTree('a');
  c.files.write('a', '/big/file-3', enc('changed'));
  c.files.rm('a', '/big/file-4');
  assert.deepEqual(diffTrees(c.store.objects, before, c.store.headTree('a')).map((x) => [x.path, x.change]), [['/big/file-3', 'modified'], ['/big/file-4', 'deleted']]);
});

test('tags and metadata follow mv, cp and rm for paths of any characters, emoji included', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/😀/a', enc('x'));
  c.files.write('v', '/😀x', enc('y'));
  c.tags.add('v', '/😀/a', ['t1']);
  c.tags.add('v', '/😀x', ['t2']);
  const tagsAt = (path: string) => c.store.db.all<{ tag: string }>('SELECT tag FROM tags WHERE path = ? ORDER BY tag', path).map((r) => r.tag);
  c.files.mv('v', '/😀', '/plain');
  assert.deepEqual(tagsAt('/plain/a'), ['t1']);
  assert.deepEqual(tagsAt('/😀/a'), []);
  assert.deepEqual(tagsAt('/😀x'), ['t2'], 'a sibling sharing the prefix keeps its tags');
  c.files.rm('v', '/😀x');
  assert.deepEqual(tagsAt('/😀x'), []);
  // cp replaces the destination's attributes instead of merging them.
  c.files.write('v', '/b', enc('b'));
  c.tags.add('v', '/b', ['old-b']);
  c.files.cp('v', '/plain/a', '/b');
  assert.deepEqual(tagsAt('/b'), ['t1']);
});

test('commit ids resolve only within the vault they belong to', () => {
  const c = openCorral();
  c.vaults.create('a');
  c.vaults.create('b');
  c.files.write('b', '/secret', enc('b only'));
  const idB = c.store.getVault('b').head;
  assert.throws(() => c.files.cat('a', '/secret', idB), (e: unknown) => (e as { code?: string }).code === 'REF_NOT_FOUND');
  assert.throws(() => c.checkpoints.restore('a', idB.slice(0, 12)), (e: unknown) => (e as { code?: string }).code === 'REF_NOT_FOUND');
  // A fork's history includes its source's, so those ids resolve there.
  c.vaults.fork('b', 'fork-of-b');
  assert.equal(new TextDecoder().decode(c.files.cat('fork-of-b', '/secret', idB.slice(0, 8))), 'b only');
});
