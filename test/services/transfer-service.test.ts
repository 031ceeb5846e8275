import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';
import { openCorral, tempDir } from '../helpers.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import type { Corral } from '../../src/services/corral.ts';
import { WRITE_AHEAD_FILES } from '../../src/runtime/transfer-limits.ts';

const SECRET = 'secret outside the imported tree';

/** A host tree with an executable, nested dirs, a relative and an absolute symlink, an empty dir and a fifo. */
function makeHostTree(): { root: string; outsideFile: string } {
  const base = tempDir('corral-transfer-');
  const outsideFile = join(base, 'outside.txt');
  writeFileSync(outsideFile, SECRET);
  const root = join(base, 'tree');
  mkdirSync(join(root, 'src/lib/deep'), { recursive: true });
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'run.sh'), '#!/bin/sh\necho run\n');
  chmodSync(join(root, 'run.sh'), 0o755);
  writeFileSync(join(root, 'src/lib/deep/data.bin'), Buffer.from([0, 1, 2, 255, 254]));
  writeFileSync(join(root, 'src/readme.txt'), 'hello\n');
  chmodSync(join(root, 'src/readme.txt'), 0o600);
  symlinkSync('../readme.txt', join(root, 'src/lib/rel-link'));
  symlinkSync(outsideFile, join(root, 'abs-link'));
  symlinkSync('../../outside.txt', join(root, 'src/escaping-link'));
  utimesSync(join(root, 'src/readme.txt'), 1_600_000_000.123, 1_600_000_000.123);
  execFileSync('mkfifo', [join(root, 'a-fifo')]);
  return { root, outsideFile };
}

interface HostNode {
  kind: 'file' | 'dir' | 'symlink';
  mode?: number;
  mtime?: number;
  content?: string;
  target?: string;
}

/** Every file, dir and link below `root` (fifos etc. left out), as comparable values. */
function snapshot(root: string): Record<string, HostNode> {
  const out: Record<string, HostNode> = {};
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[r] = { kind: 'symlink', target: readlinkSync(p) };
      else if (st.isDirectory()) {
        out[r] = { kind: 'dir', mode: st.mode & 0o777 };
        walk(p, r);
      } else if (st.isFile()) out[r] = { kind: 'file', mode: st.mode & 0o777, mtime: Math.floor(st.mtimeMs), content: readFileSync(p).toString('base64') };
    }
  };
  walk(root, '');
  return out;
}

function headOf(c: Corral, vault: string): string {
  return c.store.getVault(vault).head;
}

function expectError(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isCorralError(e) && e.code === code);
}

async function expectRejection(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCorralError(e) && e.code === code);
}

/** A tar stream built from entries (hostile ones included), as a Buffer. */
async function buildTar(entries: { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo'; content?: string; linkname?: string; mode?: number }[]): Promise<Buffer> {
  const pack = tarPack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      const header = { name: e.name, type: e.type ?? 'file', mode: e.mode, linkname: e.linkname, mtime: new Date(1_650_000_000_000) };
      if ((e.type ?? 'file') === 'file') pack.entry(header, Buffer.from(e.content ?? ''), cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

describe('importDir / exportDir', () => {
  test('imports a host tree as one commit: modes, mtimes, links stored as links, fifos skipped, outside links reported', () => {
    const { root } = makeHostTree();
    const c = openCorral();
    c.vaults.create('v');
    const before = headOf(c, 'v');
    const r = c.transfer.importDir('v', root, '/proj');
    assert.equal(r.files, 3);
    assert.equal(r.symlinks, 3);
    assert.equal(r.dirs, 4); // src, src/lib, src/lib/deep, empty
    assert.equal(r.bytes, '#!/bin/sh\necho run\n'.length + 5 + 'hello\n'.length);
    assert.ok(r.commit);
    assert.equal(r.commit.parent, before);
    assert.equal(r.commit.origin, 'import');
    assert.deepEqual(r.skipped.map((s) => s.path), ['/proj/a-fifo']);
    assert.deepEqual(r.outside.map((o) => o.path).sort(), ['/proj/abs-link', '/proj/src/escaping-link']);

    assert.equal(c.files.stat('v', '/proj/run.sh').mode, 0o755);
    assert.equal(c.files.stat('v', '/proj/src/readme.txt').mode, 0o600);
    assert.equal(c.files.stat('v', '/proj/src/readme.txt').mtime, 1_600_000_000_123);
    assert.equal(c.files.stat('v', '/proj/empty').kind, 'dir');
    assert.equal(c.files.stat('v', '/proj/src/lib/rel-link').target, '../readme.txt');
    // The relative link resolves inside the vault; the absolute one is a link, not the file it names.
    assert.equal(new TextDecoder().decode(c.files.cat('v', '/proj/src/lib/rel-link')), 'hello\n');
    const abs = c.files.stat('v', '/proj/abs-link');
    assert.equal(abs.kind, 'symlink');
    assert.equal(abs.size, abs.target!.length);
    const leaked = c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs WHERE data = ?', new TextEncoder().encode(SECRET));
    assert.equal(leaked?.n, 0, 'the content behind an outside link must never be imported');
    // Exactly one new commit.
    assert.equal(c.history.log('v').length, 2);
  });

  test('export writes back the same tree: modes, mtimes, contents and link targets', () => {
    const { root } = makeHostTree();
    const c = openCorral();
    c.vaults.create('v');
    c.transfer.importDir('v', root, '/');
    const dest = join(tempDir(), 'out', 'nested');
    const r = c.transfer.exportDir('v', '/', dest);
    assert.deepEqual({ files: r.files, dirs: r.dirs, symlinks: r.symlinks }, { files: 3, dirs: 4, symlinks: 3 });
    assert.deepEqual(snapshot(dest), snapshot(root));
    assert.equal(lstatSync(join(dest, 'abs-link')).isSymbolicLink(), true);
  });

  test('exporting one file writes it into HOSTDIR under its own name; --rev picks an older version', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/bin/tool', new TextEncoder().encode('v1'), { mode: 0o750 });
    c.checkpoints.save('v', 'first');
    c.files.write('v', '/bin/tool', new TextEncoder().encode('v2'));
    const dest = tempDir();
    c.transfer.exportDir('v', '/bin/tool', dest, { ref: 'first' });
    assert.equal(readFileSync(join(dest, 'tool'), 'utf8'), 'v1');
    assert.equal(lstatSync(join(dest, 'tool')).mode & 0o777, 0o750);
    expectError(() => c.transfer.exportDir('v', '/bin/tool', dest), 'PATH_EXISTS');
    c.transfer.exportDir('v', '/bin/tool', dest, { force: true });
    assert.equal(readFileSync(join(dest, 'tool'), 'utf8'), 'v2');
  });

  test('import merges into an existing directory and refuses a non-directory target or bad host paths', () => {
    const { root } = makeHostTree();
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/proj/keep.txt', new TextEncoder().encode('kept'));
    c.files.write('v', '/proj/run.sh', new TextEncoder().encode('old'));
    c.files.write('v', '/file', new TextEncoder().encode('x'));
    c.transfer.importDir('v', root, '/proj');
    assert.equal(new TextDecoder().decode(c.files.cat('v', '/proj/keep.txt')), 'kept');
    assert.equal(new TextDecoder().decode(c.files.cat('v', '/proj/run.sh')), '#!/bin/sh\necho run\n');

    const head = headOf(c, 'v');
    expectError(() => c.transfer.importDir('v', root, '/file'), 'NOT_A_DIRECTORY');
    expectError(() => c.transfer.importDir('v', root, '/file/below'), 'NOT_A_DIRECTORY');
    expectError(() => c.transfer.importDir('v', join(root, 'nope'), '/'), 'PATH_NOT_FOUND');
    expectError(() => c.transfer.importDir('v', join(root, 'run.sh'), '/'), 'NOT_A_DIRECTORY');
    expectError(() => c.transfer.importDir('v', root, '/../x\0'), 'INVALID_PATH');
    assert.equal(headOf(c, 'v'), head);
  });

  test('quotas: a file over max-file-size deep inside the tree, or too many files, change nothing', () => {
    const { root } = makeHostTree();
    writeFileSync(join(root, 'src/lib/deep/big.bin'), Buffer.alloc(5000, 7));
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/existing', new TextEncoder().encode('e'));
    const head = headOf(c, 'v');
    const blobs = c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n;

    c.vaults.setQuota('v', { maxFileSize: 4096 });
    assert.throws(
      () => c.transfer.importDir('v', root, '/'),
      (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED') && e.details.path === '/src/lib/deep/big.bin' && /max file size of 4096/.test(e.message),
    );
    c.vaults.setQuota('v', { maxFileSize: null, maxFiles: 4 });
    assert.throws(() => c.transfer.importDir('v', root, '/'), (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED') && e.details.quota === 'maxFiles');
    c.vaults.setQuota('v', { maxFiles: null, maxBytes: 1000 });
    assert.throws(() => c.transfer.importDir('v', root, '/'), (e: unknown) => isCorralError(e, 'QUOTA_EXCEEDED') && e.details.quota === 'maxBytes');

    assert.equal(headOf(c, 'v'), head);
    assert.deepEqual(c.files.ls('v', '/').map((e) => e.name), ['existing']);
    assert.equal(c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n, blobs, 'a failed import leaves no objects behind');
  });

  test('export never writes through a symlink planted in an existing HOSTDIR, even with force', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/a/victim.txt', new TextEncoder().encode('payload'));
    c.files.write('v', '/b.txt', new TextEncoder().encode('payload'));
    const base = tempDir();
    const target = join(base, 'target');
    mkdirSync(target);
    writeFileSync(join(base, 'precious.txt'), 'precious');
    const dest = join(base, 'dest');
    mkdirSync(dest);
    writeFileSync(join(dest, 'other'), 'x');

    expectError(() => c.transfer.exportDir('v', '/', dest), 'DIRECTORY_NOT_EMPTY');
    // A directory symlink where the vault has a directory.
    symlinkSync(target, join(dest, 'a'));
    expectError(() => c.transfer.exportDir('v', '/', dest, { force: true }), 'UNSAFE_HOST_PATH');
    assert.deepEqual(readdirSync(target), [], 'nothing may be written into the link target');
    // A file symlink where the vault has a file.
    const dest2 = join(base, 'dest2');
    mkdirSync(dest2);
    symlinkSync(join(base, 'precious.txt'), join(dest2, 'b.txt'));
    expectError(() => c.transfer.exportDir('v', '/', dest2, { force: true }), 'UNSAFE_HOST_PATH');
    assert.equal(readFileSync(join(base, 'precious.txt'), 'utf8'), 'precious');
    // With force, a plain existing file is replaced; a hard-linked one gets a new inode, its twin is untouched.
    const dest3 = join(base, 'dest3');
    mkdirSync(join(dest3, 'a'), { recursive: true });
    writeFileSync(join(dest3, 'b.txt'), 'old content that is longer');
    writeFileSync(join(base, 'twin.txt'), 'twin');
    linkSync(join(base, 'twin.txt'), join(dest3, 'a/victim.txt'));
    c.transfer.exportDir('v', '/', dest3, { force: true });
    assert.equal(readFileSync(join(dest3, 'b.txt'), 'utf8'), 'payload');
    assert.equal(readFileSync(join(dest3, 'a/victim.txt'), 'utf8'), 'payload');
    assert.equal(readFileSync(join(base, 'twin.txt'), 'utf8'), 'twin');
    assert.equal(existsSync(join(dest3, 'a/victim.txt')), true);
  });
});

describe('importTar / exportTar', () => {
  test('a tar round trip keeps modes, mtimes, links and empty directories', async () => {
    const { root } = makeHostTree();
    const c = openCorral();
    c.vaults.create('a');
    c.vaults.create('b');
    c.transfer.importDir('a', root, '/');
    const tar = new PassThrough();
    const chunks: Buffer[] = [];
    tar.on('data', (b: Buffer) => chunks.push(b));
    const exported = await c.transfer.exportTar('a', '/', tar);
    assert.equal(exported.files, 3);
    const r = await c.transfer.importTar('b', Readable.from([Buffer.concat(chunks)]), '/copy');
    assert.deepEqual({ files: r.files, dirs: r.dirs, symlinks: r.symlinks }, { files: 3, dirs: 4, symlinks: 3 });
    assert.equal(r.commit?.origin, 'import');
    const out = tempDir();
    c.transfer.exportDir('b', '/copy', out);
    const expected = snapshot(root);
    // A tar keeps whole seconds.
    for (const n of Object.values(expected)) if (n.mtime !== undefined) n.mtime = Math.floor(n.mtime / 1000) * 1000;
    assert.deepEqual(snapshot(out), expected);
  });

  test('hostile entry names fail the whole import with INVALID_PATH and change nothing', async () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/x/keep', new TextEncoder().encode('k'));
    const head = headOf(c, 'v');
    const hostile = [
      [{ name: 'ok.txt', content: 'fine' }, { name: '../../etc/x', content: 'pwned' }],
      [{ name: '/abs', content: 'pwned' }],
      [{ name: 'a/../../escape', content: 'pwned' }],
      [{ name: 'dir/./..//../up', content: 'pwned' }],
      // A link, then a file "inside" it: would write through the link if followed.
      [{ name: 'l', type: 'symlink' as const, linkname: '/etc' }, { name: 'l/passwd', content: 'pwned' }],
    ];
    for (const entries of hostile) {
      const tar = await buildTar(entries);
      await expectRejection(c.transfer.importTar('v', Readable.from([tar]), '/x'), 'INVALID_PATH');
    }
    assert.equal(headOf(c, 'v'), head);
    assert.deepEqual(c.files.ls('v', '/x').map((e) => e.name), ['keep']);
    assert.equal(c.history.log('v').length, 2);
  });

  test('hard links and fifos are skipped with a note; truncated or non-tar input is refused', async () => {
    const c = openCorral();
    c.vaults.create('v');
    const tar = await buildTar([
      { name: 'dir/', type: 'directory', mode: 0o700 },
      { name: 'dir/f', content: 'data', mode: 0o640 },
      { name: 'dir/hard', type: 'link', linkname: 'dir/f' },
      { name: 'dir/pipe', type: 'fifo' },
      { name: 'dir/up', type: 'symlink', linkname: '../../../outside' },
    ]);
    const r = await c.transfer.importTar('v', Readable.from([tar]), '/t');
    assert.deepEqual(r.skipped.map((s) => s.path), ['/t/dir/hard', '/t/dir/pipe']);
    assert.match(r.skipped[0]!.reason, /hard link/);
    assert.deepEqual(r.outside, [{ path: '/t/dir/up', target: '../../../outside' }]);
    assert.equal(c.files.stat('v', '/t/dir').mode, 0o700);
    assert.equal(c.files.stat('v', '/t/dir/f').mode, 0o640);
    assert.equal(c.files.stat('v', '/t/dir/f').mtime, 1_650_000_000_000);

    const head = headOf(c, 'v');
    await expectRejection(c.transfer.importTar('v', Readable.from([tar.subarray(0, 700)]), '/u'), 'INVALID_ARGUMENT');
    await expectRejection(c.transfer.importTar('v', Readable.from([Buffer.from('not a tar at all '.repeat(64))]), '/u'), 'INVALID_ARGUMENT');
    c.vaults.setQuota('v', { maxFileSize: 2 });
    await expectRejection(c.transfer.importTar('v', Readable.from([tar]), '/u'), 'QUOTA_EXCEEDED');
    assert.equal(headOf(c, 'v'), head);
  });
});

describe('host paths swapped during a transfer', () => {
  test('a source directory swapped for a symlink between the scan and the read fails the import with UNSAFE_HOST_PATH and changes nothing', () => {
    const base = tempDir('corral-toctou-');
    const root = join(base, 'tree');
    mkdirSync(join(root, 'sub'), { recursive: true });
    writeFileSync(join(root, 'top.txt'), 'top');
    writeFileSync(join(root, 'sub/notes.txt'), 'inside the source');
    // Outside the source: a file of the same name, which the swap would make the import read.
    const outside = join(base, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'notes.txt'), SECRET);

    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/keep', new TextEncoder().encode('k'));
    const head = headOf(c, 'v');
    const scanned = c.transfer.scanDir('v', root, '/in');
    renameSync(join(root, 'sub'), join(base, 'sub-moved'));
    symlinkSync(outside, join(root, 'sub'));
    expectError(() => c.transfer.importScanned(scanned), 'UNSAFE_HOST_PATH');

    assert.equal(headOf(c, 'v'), head);
    assert.deepEqual(c.files.ls('v', '/').map((e) => e.name), ['keep']);
    const leaked = c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs WHERE data = ?', new TextEncoder().encode(SECRET));
    assert.equal(leaked?.n, 0, 'nothing from outside the source may be stored');

    // A file replaced by a symlink (O_NOFOLLOW) is refused the same way.
    rmSync(join(root, 'sub'));
    renameSync(join(base, 'sub-moved'), join(root, 'sub'));
    const again = c.transfer.scanDir('v', root, '/in');
    rmSync(join(root, 'sub/notes.txt'));
    symlinkSync(join(outside, 'notes.txt'), join(root, 'sub/notes.txt'));
    expectError(() => c.transfer.importScanned(again), 'UNSAFE_HOST_PATH');
    assert.equal(headOf(c, 'v'), head);
  });

  test('export refuses to write into a directory swapped for a symlink after it was made or checked', () => {
    const base = tempDir('corral-toctou-');
    const outside = join(base, 'outside');
    mkdirSync(outside);
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/a/victim.txt', new TextEncoder().encode('payload'));
    // The swap happens while the export fetches the file's data, after it checked a/ and before it opens a/victim.txt.
    const objects = c.store.objects;
    const getBlob = objects.getBlob.bind(objects);
    let swapIn: string | undefined;
    objects.getBlob = (hash: string) => {
      if (swapIn !== undefined) {
        renameSync(swapIn, swapIn + '-moved');
        symlinkSync(outside, swapIn);
        swapIn = undefined;
      }
      return getBlob(hash);
    };

    // A directory the export made.
    const dest = join(base, 'fresh');
    swapIn = join(dest, 'a');
    expectError(() => c.transfer.exportDir('v', '/', dest), 'UNSAFE_HOST_PATH');
    assert.deepEqual(readdirSync(outside), [], 'no file may be created (or left) outside');

    // A directory that was there already (force), over a file outside it.
    writeFileSync(join(outside, 'victim.txt'), 'precious');
    const dest2 = join(base, 'existing');
    mkdirSync(join(dest2, 'a'), { recursive: true });
    writeFileSync(join(dest2, 'a/victim.txt'), 'old');
    swapIn = join(dest2, 'a');
    expectError(() => c.transfer.exportDir('v', '/', dest2, { force: true }), 'UNSAFE_HOST_PATH');
    assert.equal(readFileSync(join(outside, 'victim.txt'), 'utf8'), 'precious');
    assert.deepEqual(readdirSync(outside), ['victim.txt']);
  });
});

describe('importDir write-ahead', () => {
  test('host files are read before the commit takes the write lock, so their later removal does not matter', () => {
    const { root } = makeHostTree();
    const c = openCorral();
    c.vaults.create('v');
    const store = c.store;
    const mutate = store.mutate.bind(store);
    let lockFree: boolean | undefined;
    store.mutate = ((...args: Parameters<typeof mutate>) => {
      lockFree = !store.db.raw.isTransaction;
      // Once the commit starts, the host tree is no longer needed.
      rmSync(root, { recursive: true });
      return mutate(...args);
    }) as typeof mutate;
    const r = c.transfer.importDir('v', root, '/p');
    assert.equal(lockFree, true);
    assert.equal(r.files, 3);
    assert.equal(new TextDecoder().decode(c.files.cat('v', '/p/src/readme.txt')), 'hello\n');
    assert.equal(c.files.stat('v', '/p/src/lib/deep/data.bin').size, 5);
  });

  test('a large tree is written ahead in batches and imports whole', () => {
    const base = tempDir('corral-many-');
    const root = join(base, 'tree');
    mkdirSync(root);
    for (let i = 0; i < WRITE_AHEAD_FILES + 10; i++) writeFileSync(join(root, `f${i}`), `file ${i}`);
    const c = openCorral();
    c.vaults.create('v');
    const blobsAtCommit: number[] = [];
    const mutate = c.store.mutate.bind(c.store);
    c.store.mutate = ((...args: Parameters<typeof mutate>) => {
      blobsAtCommit.push(c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n);
      return mutate(...args);
    }) as typeof mutate;
    const blobsBefore = c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n;
    const r = c.transfer.importDir('v', root, '/');
    assert.equal(r.files, WRITE_AHEAD_FILES + 10);
    assert.equal(blobsAtCommit[0]! - blobsBefore, WRITE_AHEAD_FILES, 'one full batch is stored before the commit');
    assert.equal(new TextDecoder().decode(c.files.cat('v', `/f${WRITE_AHEAD_FILES + 9}`)), `file ${WRITE_AHEAD_FILES + 9}`);
    assert.equal(c.history.log('v').length, 2);
  });

  test('a gc between the write-ahead and the commit makes the import fail whole, never commit missing data', () => {
    const base = tempDir('corral-gc-race-');
    const root = join(base, 'tree');
    mkdirSync(root);
    for (let i = 0; i < WRITE_AHEAD_FILES + 5; i++) writeFileSync(join(root, `f${i}`), `file ${i}`);
    const c = openCorral();
    c.vaults.create('v');
    const head = c.store.getVault('v').head;
    const mutate = c.store.mutate.bind(c.store);
    c.store.mutate = ((...args: Parameters<typeof mutate>) => {
      // The written-ahead blobs are unreachable until the commit: a gc with no grace takes them.
      c.maintenance.gc({ graceSeconds: 0 });
      return mutate(...args);
    }) as typeof mutate;
    assert.throws(() => c.transfer.importDir('v', root, '/'), (e: unknown) => isCorralError(e, 'CONFLICT') && /retry/.test(e.message));
    assert.equal(c.store.getVault('v').head, head);
  });
});
