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
