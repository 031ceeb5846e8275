import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openCorral } from '../helpers.ts';
import { isCorralError, type ErrorCode } from '../../src/protocol/errors.ts';
import { MAX_META_VALUE_BYTES } from '../../src/services/tag-service.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function fixture() {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/a.txt', enc('a'));
  c.files.write('v', '/dir/b.txt', enc('b'));
  return c;
}

function fails(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e) => isCorralError(e, code) && (message === undefined || message.test(e.message)));
}

/** Tags and metadata rows of the whole home: what "nothing changed" compares. */
function snapshot(c: ReturnType<typeof openCorral>): string {
  return JSON.stringify([c.store.db.all('SELECT * FROM tags ORDER BY 1, 2, 3'), c.store.db.all('SELECT * FROM path_meta ORDER BY 1, 2, 3')]);
}

describe('tags', () => {
  test('add, list, count, find and remove, each audited once', () => {
    const c = fixture();
    assert.deepEqual(c.tags.add('v', '/a.txt', ['red', 'blue', 'red']), { path: '/a.txt', added: ['red', 'blue'], tags: ['blue', 'red'] });
    assert.deepEqual(c.tags.add('v', 'a.txt', ['red']).added, [], 'paths are normalised; an existing tag stays');
    c.tags.add('v', '/dir', ['red']);
    c.tags.add('v', '/', ['root']);
    assert.deepEqual(c.tags.list('v', '/a.txt').tags, ['blue', 'red']);
    assert.deepEqual(c.tags.list('v', '/dir/b.txt').tags, []);
    assert.deepEqual(c.tags.all('v'), [{ tag: 'blue', count: 1 }, { tag: 'red', count: 2 }, { tag: 'root', count: 1 }]);
    assert.deepEqual(c.tags.find('v', 'red').paths, ['/a.txt', '/dir']);
    assert.deepEqual(c.tags.remove('v', '/a.txt', ['red']).tags, ['blue']);
    assert.deepEqual(c.tags.find('v', 'red').paths, ['/dir']);
    const ops = c.store.audit.list({ vault: 'v' }).filter((r) => r.op.startsWith('tag.'));
    assert.deepEqual(ops.map((r) => [r.op, r.target, r.result]), [
      ['tag.add', '/a.txt', 'ok'],
      ['tag.add', '/a.txt', 'ok'],
      ['tag.add', '/dir', 'ok'],
      ['tag.add', '/', 'ok'],
      ['tag.remove', '/a.txt', 'ok'],
    ]);
  });

  test('bad input changes nothing', () => {
    const c = fixture();
    c.tags.add('v', '/a.txt', ['keep']);
    const before = snapshot(c);
    fails(() => c.tags.add('v', '/missing.txt', ['x']), 'PATH_NOT_FOUND');
    fails(() => c.tags.add('v', '/../../etc/passwd', ['x']), 'INVALID_PATH');
    fails(() => c.tags.add('v', '/a\0.txt', ['x']), 'INVALID_PATH');
    fails(() => c.tags.add('v', '/a.txt', ['ok', 'not ok']), 'INVALID_NAME');
    fails(() => c.tags.add('v', '/a.txt', ['/slash']), 'INVALID_NAME');
    fails(() => c.tags.add('v', '/a.txt', ['x'.repeat(65)]), 'INVALID_NAME');
    fails(() => c.tags.add('v', '/a.txt', []), 'INVALID_ARGUMENT');
    fails(() => c.tags.add('v', '/a.txt', [42 as unknown as string]), 'INVALID_NAME');
    fails(() => c.tags.add('ghost', '/a.txt', ['x']), 'VAULT_NOT_FOUND');
    fails(() => c.tags.remove('v', '/a.txt', ['keep', 'absent']), 'TAG_NOT_FOUND', /absent/);
    fails(() => c.tags.list('v', '/nowhere'), 'PATH_NOT_FOUND');
    assert.equal(snapshot(c), before);
    assert.equal(c.store.audit.list({ op: 'tag.remove' }).at(-1)?.result, 'error:TAG_NOT_FOUND', 'failures are audited too');
  });

  test('tags follow mv and rm, and a fork has its own copy', () => {
    const c = fixture();
    c.tags.add('v', '/dir/b.txt', ['shared']);
    c.files.mv('v', '/dir', '/moved');
    assert.deepEqual(c.tags.find('v', 'shared').paths, ['/moved/b.txt']);
    c.vaults.fork('v', 'f');
    assert.deepEqual(c.tags.find('f', 'shared').paths, ['/moved/b.txt']);
    c.tags.add('f', '/a.txt', ['fork-only']);
    c.tags.remove('f', '/moved/b.txt', ['shared']);
    c.tags.metaSet('f', '/a.txt', 'k', 'fork');
    assert.deepEqual(c.tags.find('v', 'shared').paths, ['/moved/b.txt'], 'the source keeps its tag');
    assert.deepEqual(c.tags.find('v', 'fork-only').paths, []);
    assert.deepEqual(Object.entries(c.tags.metaAll('v', '/a.txt').meta), []);
    c.tags.add('v', '/a.txt', ['source-only']);
    assert.deepEqual(c.tags.list('f', '/a.txt').tags, ['fork-only']);
    c.files.rm('v', '/moved', { recursive: true });
    assert.deepEqual(c.tags.find('v', 'shared').paths, []);
  });
});

describe('metadata', () => {
  test('set, get, replace and delete', () => {
    const c = fixture();
    assert.equal(c.tags.metaSet('v', '/a.txt', 'owner', 'ada').previous, null);
    assert.equal(c.tags.metaSet('v', '/a.txt', 'owner', 'grace').previous, 'ada');
    c.tags.metaSet('v', '/a.txt', 'note', 'ünïcödé ✓ "quoted"\nmultiline');
    c.tags.metaSet('v', '/a.txt', '__proto__', 'plain data');
    assert.equal(c.tags.metaGet('v', '/a.txt', 'owner').value, 'grace');
    const all = c.tags.metaAll('v', '/a.txt').meta;
    assert.deepEqual(Object.entries(all), [['__proto__', 'plain data'], ['note', 'ünïcödé ✓ "quoted"\nmultiline'], ['owner', 'grace']]);
    assert.equal(c.tags.metaDelete('v', '/a.txt', 'owner').value, 'grace');
    fails(() => c.tags.metaGet('v', '/a.txt', 'owner'), 'META_NOT_FOUND');
    fails(() => c.tags.metaDelete('v', '/a.txt', 'owner'), 'META_NOT_FOUND');
    const big = 'x'.repeat(MAX_META_VALUE_BYTES);
    assert.equal(c.tags.metaSet('v', '/a.txt', 'big', big).value.length, MAX_META_VALUE_BYTES);
    const ops = c.store.audit.list({ vault: 'v' }).filter((r) => r.op.startsWith('meta.')).map((r) => `${r.op}:${r.result}`);
    assert.deepEqual(ops, ['meta.set:ok', 'meta.set:ok', 'meta.set:ok', 'meta.set:ok', 'meta.delete:ok', 'meta.delete:error:META_NOT_FOUND', 'meta.set:ok']);
  });

  test('bad keys, values and paths change nothing', () => {
    const c = fixture();
    c.tags.metaSet('v', '/a.txt', 'k', 'v');
    const before = snapshot(c);
    fails(() => c.tags.metaSet('v', '/a.txt', 'bad key', 'x'), 'INVALID_NAME');
    fails(() => c.tags.metaSet('v', '/a.txt', '', 'x'), 'INVALID_NAME');
    fails(() => c.tags.metaSet('v', '/a.txt', 'k', 'é'.repeat(MAX_META_VALUE_BYTES / 2 + 1)), 'PAYLOAD_TOO_LARGE');
    fails(() => c.tags.metaSet('v', '/a.txt', 'k', 'nul\0inside'), 'INVALID_ARGUMENT');
    fails(() => c.tags.metaSet('v', '/a.txt', 'k', 7 as unknown as string), 'INVALID_ARGUMENT');
    fails(() => c.tags.metaSet('v', '/nope', 'k', 'x'), 'PATH_NOT_FOUND');
    fails(() => c.tags.metaSet('v', '/..', 'k', 'x'), 'INVALID_PATH');
    fails(() => c.tags.metaGet('v', '/nope', 'k'), 'PATH_NOT_FOUND');
    assert.equal(snapshot(c), before);
  });

  test('export and import round trip into another vault', () => {
    const c = fixture();
    c.tags.add('v', '/a.txt', ['red', 'blue']);
    c.tags.add('v', '/dir', ['folder']);
    c.tags.metaSet('v', '/a.txt', 'owner', 'ada');
    c.tags.metaSet('v', '/dir/b.txt', '__proto__', 'x');
    const doc = c.tags.export('v');
    assert.equal(doc.version, 1);
    assert.equal(doc.vault, 'v');
    assert.deepEqual(Object.keys(doc.paths), ['/a.txt', '/dir', '/dir/b.txt']);
    assert.deepEqual(JSON.parse(JSON.stringify(doc.paths['/a.txt'])), { tags: ['blue', 'red'], meta: { owner: 'ada' } });
    const text = JSON.stringify(doc);
    assert.match(text, /"__proto__":"x"/, 'no key is lost to the prototype');

    c.vaults.create('w');
    c.files.write('w', '/a.txt', enc('other content'));
    c.files.write('w', '/dir/b.txt', enc('b'));
    c.tags.add('w', '/a.txt', ['red']);
    c.tags.metaSet('w', '/a.txt', 'owner', 'old');
    c.tags.metaSet('w', '/a.txt', 'kept', 'yes');
    const r = c.tags.import('w', JSON.parse(text));
    assert.deepEqual(r, { vault: 'w', paths: 3, tagsAdded: 2, metaSet: 2, skipped: [] });
    const back = c.tags.export('w');
    assert.deepEqual(JSON.parse(JSON.stringify(back.paths)), {
      '/a.txt': { tags: ['blue', 'red'], meta: { kept: 'yes', owner: 'ada' } },
      '/dir': { tags: ['folder'], meta: {} },
      '/dir/b.txt': { tags: [], meta: JSON.parse('{"__proto__":"x"}') },
    });
    assert.equal(c.store.audit.list({ op: 'meta.import' }).length, 1);
  });

  test('a bad document changes nothing', () => {
    const c = fixture();
    c.tags.add('v', '/a.txt', ['keep']);
    const before = snapshot(c);
    const good = { '/a.txt': { tags: ['new'], meta: { k: 'v' } } };
    const bad: unknown[] = [
      null,
      [],
      { version: 2, paths: good },
      { version: 1 },
      { version: 1, paths: { ...good, '/dir/b.txt': { tags: ['bad tag'] } } },
      { version: 1, paths: { ...good, '/dir/b.txt': { meta: { 'bad key': 'x' } } } },
      { version: 1, paths: { ...good, '/dir/b.txt': { meta: { k: 1 } } } },
      { version: 1, paths: { ...good, '/dir/b.txt': { meta: { k: 'x'.repeat(MAX_META_VALUE_BYTES + 1) } } } },
      { version: 1, paths: { ...good, '/dir/b.txt': { tag: ['typo'] } } },
      { version: 1, paths: { ...good, '/dir/b.txt': 'x' } },
      { version: 1, paths: { ...good, '/../../etc': { tags: ['x'] } } },
      { version: 1, paths: { ...good, '/a\0b': { tags: ['x'] } } },
    ];
    for (const doc of bad) fails(() => c.tags.import('v', doc), 'INVALID_ARGUMENT');
    fails(() => c.tags.import('v', { version: 1, paths: { ...good, '/missing': { tags: ['x'] } } }), 'PATH_NOT_FOUND', /missing/);
    assert.equal(snapshot(c), before);
    const r = c.tags.import('v', { version: 1, paths: { ...good, '/missing': { tags: ['x'] } } }, { skipMissing: true });
    assert.deepEqual(r.skipped, ['/missing']);
    assert.deepEqual(c.tags.list('v', '/a.txt').tags, ['keep', 'new']);
  });
});
