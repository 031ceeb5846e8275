// Hostile input for every command: a clear error with a code, and nothing changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { corral, openCorral, tempDir, testCaller } from '../helpers.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { MAX_ENTRY_BYTES, SQLITE_MAX_LENGTH } from '../../src/runtime/transfer-limits.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const hostilePaths = ['/../etc/passwd', '../x', '/a/../../b', '/a\0b', '/' + 'n'.repeat(256), '/ok/' + 'é'.repeat(200)];

test('service calls reject hostile paths and names and change nothing', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/ok/file', enc('data'));
  c.checkpoints.save('v', 'cp1');
  const head = c.store.getVault('v').head;
  const calls: [string, (p: string) => unknown][] = [
    ['write', (p) => c.files.write('v', p, enc('x'))],
    ['append', (p) => c.files.write('v', p, enc('x'), { append: true })],
    ['mkdir', (p) => c.files.mkdir('v', p, { parents: true })],
    ['rm', (p) => c.files.rm('v', p, { recursive: true, force: true })],
    ['cp-from', (p) => c.files.cp('v', p, '/dst', { recursive: true })],
    ['cp-to', (p) => c.files.cp('v', '/ok/file', p)],
    ['mv-from', (p) => c.files.mv('v', p, '/dst')],
    ['mv-to', (p) => c.files.mv('v', '/ok/file', p)],
    ['touch', (p) => c.files.touch('v', p)],
    ['ln', (p) => c.files.symlink('v', 'target', p)],
    ['chmod', (p) => c.files.chmod('v', p, 0o755)],
    ['revert', (p) => c.history.revert('v', p, 'cp1')],
    ['cat', (p) => c.files.cat('v', p)],
    ['ls', (p) => c.files.ls('v', p)],
    ['stat', (p) => c.files.stat('v', p)],
    ['tree', (p) => c.files.tree('v', p)],
    ['log', (p) => c.history.log('v', { path: p })],
  ];
  for (const [name, call] of calls)
    for (const p of hostilePaths)
      assert.throws(() => call(p), (e: unknown) => isCorralError(e, 'INVALID_PATH'), `${name} ${JSON.stringify(p.slice(0, 20))}`);
  for (const bad of ['', '-x', '../v', 'a/b', 'x'.repeat(65), 'v\0', 'ü'])
    for (const call of [() => c.vaults.create(bad), () => c.vaults.fork('v', bad), () => c.vaults.rename('v', bad), () => c.files.write(bad, '/x', enc('x'))])
      assert.throws(call, (e: unknown) => isCorralError(e, 'INVALID_NAME'), JSON.stringify(bad));
  for (const bad of ['', 'HEAD', '../x', 'a b', 'a/b', 'x'.repeat(200)])
    assert.throws(() => c.checkpoints.save('v', bad), (e: unknown) => isCorralError(e, 'INVALID_NAME'));
  assert.throws(() => c.files.write('nope', '/x', enc('x')), (e: unknown) => isCorralError(e, 'VAULT_NOT_FOUND'));
  assert.throws(() => c.files.write('v', '/x', enc('x'), { mode: 0o17777 }), (e: unknown) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => c.files.write('v', '/ok', enc('x')), (e: unknown) => isCorralError(e, 'IS_A_DIRECTORY'));
  assert.throws(() => c.files.write('v', '/ok/file/below', enc('x')), (e: unknown) => isCorralError(e, 'NOT_A_DIRECTORY'));
  assert.throws(() => c.files.write('v', '/', enc('x')), (e: unknown) => isCorralError(e, 'IS_A_DIRECTORY'));
  assert.throws(() => c.files.rm('v', '/'), (e: unknown) => isCorralError(e, 'INVALID_PATH'));
  assert.throws(() => c.files.mv('v', '/', '/x'), (e: unknown) => isCorralError(e, 'INVALID_PATH'));
  assert.throws(() => c.files.symlink('v', 'a\0b', '/l'), (e: unknown) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => c.history.diff('v', 'nope', 'HEAD'), (e: unknown) => isCorralError(e, 'REF_NOT_FOUND'));
  assert.throws(() => c.checkpoints.restore('v', 'nope'), (e: unknown) => isCorralError(e, 'REF_NOT_FOUND'));
  assert.throws(() => c.vaults.setQuota('v', { maxBytes: -1 }), (e: unknown) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.equal(c.store.getVault('v').head, head);
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/ok/file')), 'data');
  assert.ok(c.store.audit.verify().ok);
});

test('moving a directory into its own descendant fails and leaves the vault intact', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a/b/c.txt', enc('x'));
  const head = c.store.getVault('v').head;
  for (const dst of ['/a/b', '/a/b/new', '/a/b/c/d'])
    assert.throws(() => c.files.mv('v', '/a', dst), (e: unknown) => isCorralError(e, 'INVALID_ARGUMENT') || isCorralError(e, 'NOT_A_DIRECTORY'), dst);
  assert.equal(c.store.getVault('v').head, head);
  assert.equal(new TextDecoder().decode(c.files.cat('v', '/a/b/c.txt')), 'x');
});

test('quotas: every write path refuses with QUOTA_EXCEEDED and changes nothing', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a', enc('12345'));
  c.vaults.setQuota('v', { maxBytes: 9, maxFiles: 3, maxFileSize: 6 });
  const head = c.store.getVault('v').head;
  const quota = (fn: () => unknown, which: string) =>
    assert.throws(fn, (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED') && e.details.quota === which, which);
  quota(() => c.files.write('v', '/big', enc('1234567')), 'maxFileSize');
  quota(() => c.files.write('v', '/a', enc('67'), { append: true }), 'maxFileSize');
  quota(() => c.files.write('v', '/b', enc('123456')), 'maxBytes');
  quota(() => c.files.cp('v', '/a', '/a2'), 'maxBytes');
  c.files.write('v', '/b', enc('1'));
  c.files.write('v', '/c', enc('1'));
  quota(() => c.files.touch('v', '/d'), 'maxFiles');
  quota(() => c.files.symlink('v', 'a', '/l'), 'maxFiles');
  const before = c.store.getVault('v').head;
  assert.notEqual(before, head);
  // Shrinking is always allowed, even over a lowered quota.
  c.vaults.setQuota('v', { maxBytes: 1 });
  c.files.rm('v', '/b');
  assert.equal(c.vaults.quota('v').bytes, 6);
});

test('the CLI rejects hostile input with the error envelope and changes nothing', () => {
  const home = tempDir();
  assert.equal(corral(home, ['vault', 'create', 'v', '--use']).code, 0);
  assert.equal(corral(home, ['write', '/keep', 'safe']).code, 0);
  const before = corral(home, ['vault', 'info', '--json']).json.head;
  const cases: [string[], string][] = [
    [['write', '/../escape', 'x'], 'INVALID_PATH'],
    [['cat', '../../etc/passwd'], 'INVALID_PATH'],
    [['mkdir', '-p', '/' + 'x'.repeat(300)], 'INVALID_PATH'],
    [['rm', '-r', '/'], 'INVALID_PATH'],
    [['mv', '/keep', '/../x'], 'INVALID_PATH'],
    [['vault', 'create', '-bad'], 'INVALID_ARGUMENT'],
    [['vault', 'create', '.hidden'], 'INVALID_NAME'],
    [['vault', 'create', 'ünïcode'], 'INVALID_NAME'],
    [['vault', 'create', 'x'.repeat(65)], 'INVALID_NAME'],
    [['--vault', 'missing', 'ls'], 'VAULT_NOT_FOUND'],
    [['checkpoint', 'save', 'a b'], 'INVALID_NAME'],
    [['checkpoint', 'restore', 'never'], 'REF_NOT_FOUND'],
    [['diff', 'nope', 'HEAD'], 'REF_NOT_FOUND'],
    [['write', '/x', 'y', '--mode', '99'], 'INVALID_ARGUMENT'],
    [['tree', '-L', 'abc'], 'INVALID_ARGUMENT'],
    [['quota', 'set', '--max-bytes', 'lots'], 'INVALID_ARGUMENT'],
    [['log', '-n', '-5'], 'INVALID_ARGUMENT'],
    [['audit', '--since', 'yesterday-ish'], 'INVALID_ARGUMENT'],
  ];
  for (const [args, code] of cases) {
    const r = corral(home, [...args, '--json']);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.json?.error?.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  assert.equal(corral(home, ['vault', 'info', '--json']).json.head, before);
  assert.equal(corral(home, ['cat', '/keep']).stdout, 'safe');
});

test('stdin is read up to a limit: one byte more is PAYLOAD_TOO_LARGE, and an endless stream is not read to its end', { timeout: 10_000 }, async () => {
  const { readStdin } = await import('../../src/cli/context.ts');
  const exact = await readStdin(10, 'the file', Readable.from([Buffer.alloc(6, 1), Buffer.alloc(4, 2)]));
  assert.deepEqual([...exact], [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
  await assert.rejects(readStdin(10, 'the file', Readable.from([Buffer.alloc(6), Buffer.alloc(5)])), (e: unknown) => isCorralError(e, 'PAYLOAD_TOO_LARGE') && /more than 10 bytes/.test(e.message));
  let yielded = 0;
  async function* endless(): AsyncGenerator<Uint8Array> {
    for (;;) {
      yielded++;
      yield new Uint8Array(1024);
    }
  }
  await assert.rejects(readStdin(64 * 1024, 'the metadata document', endless()), (e: unknown) => isCorralError(e, 'PAYLOAD_TOO_LARGE') && /metadata document/.test(e.message));
  assert.equal(yielded, 65, 'reading stops at the first chunk past the limit');
});

test('write and append are capped at the largest file Corral stores and at max-file-size, before anything is stored', () => {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/small', enc('x'.repeat(60)));
  // A file just under the largest size, without allocating it: an entry naming a small blob with that size.
  c.store.mutate(testCaller, 'v', { op: 'test.forge', target: '/big', message: 'a huge file' }, (editor) => {
    const blob = c.store.objects.putBlob(enc('tiny'));
    editor.set('/big', { kind: 'file', mode: 0o644, hash: blob.hash, size: MAX_ENTRY_BYTES - 5, mtime: editor.mtime });
    return null;
  });
  const head = c.store.getVault('v').head;
  assert.throws(() => c.files.write('v', '/big', enc('0123456789'), { append: true }), (e: unknown) => isCorralError(e, 'PAYLOAD_TOO_LARGE') && e.details.size === MAX_ENTRY_BYTES + 5 && /\/big/.test(e.message));
  c.vaults.setQuota('v', { maxFileSize: 100 });
  assert.throws(() => c.files.write('v', '/small', enc('y'.repeat(50)), { append: true }), (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED') && e.details.quota === 'maxFileSize');
  assert.throws(() => c.files.write('v', '/new', enc('z'.repeat(101))), (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED'));
  assert.equal(c.store.getVault('v').head, head);
  assert.equal(c.files.stat('v', '/small').size, 60);
});

test("the largest file Corral accepts fits in one SQLite row (SQLite's length limit lowered to show it)", () => {
  const c = openCorral();
  c.vaults.create('v');
  const limit = 64 * 1024;
  c.store.db.raw.limits.length = limit;
  // Binary data (with NUL bytes), so no search index row is involved.
  const largest = new Uint8Array(limit - (SQLITE_MAX_LENGTH - MAX_ENTRY_BYTES));
  const r = c.files.write('v', '/largest.bin', largest);
  assert.equal(r.size, largest.length);
  assert.equal(c.files.cat('v', '/largest.bin').length, largest.length);
});

test("stdin and host files are read only up to the vault's max file size", async () => {
  const home = tempDir();
  assert.equal(corral(home, ['vault', 'create', 'q', '--use']).code, 0);
  assert.equal(corral(home, ['quota', 'set', '--max-file-size', '1k']).code, 0);
  const r = corral(home, ['write', '/big', '--json'], { input: 'x'.repeat(5000) });
  assert.equal(r.code, 5);
  assert.equal(r.json.error.code, 'QUOTA_EXCEEDED');
  // A host file that grew after the scan stops being read at the limit.
  const { readHostFile } = await import('../../src/runtime/host-files.ts');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const file = join(tempDir(), 'grown.bin');
  writeFileSync(file, Buffer.alloc(300_000, 1));
  assert.throws(() => readHostFile(file, '/grown.bin', 100, undefined, 1024), (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED'));
  assert.equal(readHostFile(file, '/grown.bin', 100).length, 300_000);
});
