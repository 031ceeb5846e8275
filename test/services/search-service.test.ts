import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openCorral } from '../helpers.ts';
import { compileGlob, dropIndexedBlobs, parseSizeTest, GREP_MAX_FILE_BYTES, MAX_LINE_CHARS } from '../../src/services/search-service.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function fixture() {
  const c = openCorral();
  c.vaults.create('v');
  c.files.write('v', '/README.md', enc('# Project\nHello World\n'));
  c.files.write('v', '/docs/guide.md', enc('line one\nTODO: write the guide\nlast line\n'));
  c.files.write('v', '/docs/deep/notes.txt', enc('todo lower case\nnothing\nTodo mixed\n'));
  c.files.write('v', '/src/app.ts', enc('export const x = 1; // TODO\r\nconst y = 2;\r\n'));
  c.files.write('v', '/src/big.bin', new Uint8Array(3000).fill(0));
  c.files.write('v', '/data.bin', enc('TODO\0binary'));
  c.files.symlink('v', '../docs/guide.md', '/src/guide-link');
  return c;
}

describe('compileGlob', () => {
  test('matches *, ?, classes, negation, ranges and escapes on whole names', () => {
    const m = (p: string, s: string) => compileGlob(p)(s);
    assert.ok(m('*.md', 'README.md'));
    assert.ok(!m('*.md', 'README.mdx'));
    assert.ok(m('?.txt', 'a.txt') && !m('?.txt', 'ab.txt'));
    assert.ok(m('[abc]*', 'banana') && !m('[abc]*', 'date'));
    assert.ok(m('[!abc]*', 'date') && !m('[!abc]*', 'apple'));
    assert.ok(m('file[0-9].log', 'file7.log') && !m('file[0-9].log', 'filex.log'));
    assert.ok(m('\\*star', '*star') && !m('\\*star', 'xstar'));
    assert.ok(m('[]]x', ']x'));
    assert.ok(m('a[b', 'a[b'), 'an unclosed [ is literal');
    assert.ok(m('*', '') && m('**', 'anything'));
    assert.ok(m('é?', 'éü'), 'code points, not UTF-16 units');
    assert.ok(!m('.*', 'x') && m('.*', '.hidden'), 'a dot is literal');
  });

  test('a pathological pattern stays linear', () => {
    const name = 'a'.repeat(255);
    const started = performance.now();
    assert.equal(compileGlob('*a*a*a*a*a*a*a*a*a*a*a*a*b')(name), false);
    assert.ok(performance.now() - started < 200, 'no catastrophic backtracking');
  });

  test('rejects empty and oversized patterns', () => {
    assert.throws(() => compileGlob(''), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => compileGlob('x'.repeat(2000)), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  });
});

describe('parseSizeTest', () => {
  test('reads +N, -N and N with units', () => {
    assert.deepEqual(parseSizeTest('+10k'), { op: 'gt', bytes: 10240 });
    assert.deepEqual(parseSizeTest('-1M'), { op: 'lt', bytes: 1048576 });
    assert.deepEqual(parseSizeTest('512'), { op: 'eq', bytes: 512 });
    assert.deepEqual(parseSizeTest('2G'), { op: 'eq', bytes: 2 * 1024 ** 3 });
    assert.deepEqual(parseSizeTest('+100c'), { op: 'gt', bytes: 100 });
    for (const bad of ['', 'k', '+-1', '10x', '1e3', '99999999999999999'])
      assert.throws(() => parseSizeTest(bad), (e) => isCorralError(e, 'INVALID_ARGUMENT'), bad);
  });
});

describe('find', () => {
  test('filters by name, type, size and depth', () => {
    const c = fixture();
    assert.deepEqual(c.search.find('v', '/', { name: '*.md' }).map((m) => m.path), ['/README.md', '/docs/guide.md']);
    assert.deepEqual(c.search.find('v', '/', { type: 'd' }).map((m) => m.path), ['/', '/docs', '/docs/deep', '/src']);
    assert.deepEqual(c.search.find('v', '/', { type: 'l' }).map((m) => m.path), ['/src/guide-link']);
    assert.deepEqual(c.search.find('v', '/', { type: 'f', size: '+2k' }).map((m) => m.path), ['/src/big.bin']);
    assert.deepEqual(c.search.find('v', '/', { type: 'f', size: '-12' }).map((m) => m.path), ['/data.bin']);
    assert.deepEqual(c.search.find('v', '/', { size: '3000' }).map((m) => m.path), ['/src/big.bin']);
    assert.deepEqual(c.search.find('v', '/', { maxDepth: 1 }).map((m) => m.path), ['/', '/README.md', '/data.bin', '/docs', '/src']);
    assert.deepEqual(c.search.find('v', '/', { minDepth: 3 }).map((m) => m.path), ['/docs/deep/notes.txt']);
    assert.deepEqual(c.search.find('v', '/docs', { minDepth: 1, maxDepth: 1 }).map((m) => m.path), ['/docs/deep', '/docs/guide.md']);
    assert.deepEqual(c.search.find('v', '/README.md').map((m) => m.path), ['/README.md'], 'a file start lists itself');
    const [m] = c.search.find('v', '/', { name: 'big.bin' });
    assert.deepEqual(Object.keys(m!).sort(), ['kind', 'mode', 'mtime', 'path', 'size']);
    assert.equal(m!.kind, 'file');
    assert.equal(m!.size, 3000);
  });

  test('filters by tags and metadata, and searches an older version with ref', () => {
    const c = fixture();
    c.tags.add('v', '/docs/guide.md', ['doc', 'wip']);
    c.tags.add('v', '/README.md', ['doc']);
    c.tags.metaSet('v', '/docs/guide.md', 'status', 'draft');
    c.tags.metaSet('v', '/README.md', 'status', 'final');
    assert.deepEqual(c.search.find('v', '/', { tags: ['doc'] }).map((m) => m.path), ['/README.md', '/docs/guide.md']);
    assert.deepEqual(c.search.find('v', '/', { tags: ['doc', 'wip'] }).map((m) => m.path), ['/docs/guide.md']);
    assert.deepEqual(c.search.find('v', '/', { meta: ['status=final'] }).map((m) => m.path), ['/README.md']);
    assert.deepEqual(c.search.find('v', '/', { meta: ['status'] }).map((m) => m.path), ['/README.md', '/docs/guide.md']);
    assert.deepEqual(c.search.find('v', '/', { meta: ['status='] }), []);
    c.checkpoints.save('v', 'before');
    c.files.write('v', '/docs/new.md', enc('new'));
    assert.equal(c.search.find('v', '/', { name: 'new.md' }).length, 1);
    assert.equal(c.search.find('v', '/', { name: 'new.md', ref: 'before' }).length, 0);
  });

  test('bad input is a clear error', () => {
    const c = fixture();
    const code = (fn: () => unknown, expected: string) => assert.throws(fn, (e) => isCorralError(e) && e.code === expected);
    code(() => c.search.find('v', '/../../etc'), 'INVALID_PATH');
    code(() => c.search.find('v', '/a\0b'), 'INVALID_PATH');
    code(() => c.search.find('v', '/missing'), 'PATH_NOT_FOUND');
    code(() => c.search.find('nope', '/'), 'VAULT_NOT_FOUND');
    code(() => c.search.find('../x', '/'), 'INVALID_NAME');
    code(() => c.search.find('v', '/', { type: 'x' as 'f' }), 'INVALID_ARGUMENT');
    code(() => c.search.find('v', '/', { maxDepth: -1 }), 'INVALID_ARGUMENT');
    code(() => c.search.find('v', '/', { size: '+big' }), 'INVALID_ARGUMENT');
    code(() => c.search.find('v', '/', { tags: ['has space'] }), 'INVALID_NAME');
    code(() => c.search.find('v', '/', { meta: ['bad key=1'] }), 'INVALID_NAME');
    code(() => c.search.find('v', '/', { ref: 'no-such-checkpoint' }), 'REF_NOT_FOUND');
  });
});

describe('grep', () => {
  test('finds lines with numbers, case-insensitively, skipping binary files and symlinks', () => {
    const c = fixture();
    const r = c.search.grep('v', 'TODO');
    assert.deepEqual(r.matches.map((m) => `${m.path}:${m.line}:${m.text}`), ['/docs/guide.md:2:TODO: write the guide', '/src/app.ts:1:export const x = 1; // TODO']);
    assert.deepEqual(r.skipped.map((s) => [s.path, s.reason]), [['/data.bin', 'binary'], ['/src/big.bin', 'binary']].sort());
    assert.equal(r.files, 2);
    const i = c.search.grep('v', 'todo', '/docs', { ignoreCase: true });
    assert.deepEqual(i.matches.map((m) => [m.path, m.line]), [['/docs/deep/notes.txt', 1], ['/docs/deep/notes.txt', 3], ['/docs/guide.md', 2]]);
    assert.deepEqual(i.counts, [{ path: '/docs/deep/notes.txt', count: 2 }, { path: '/docs/guide.md', count: 1 }]);
    // The link points at guide.md, which matches; the link itself is never followed.
    assert.ok(!c.search.grep('v', 'guide', '/src').matches.some((m) => m.path === '/src/guide-link'));
    assert.deepEqual(c.search.grep('v', 'guide', '/src/guide-link').skipped, [{ path: '/src/guide-link', reason: 'symlink', size: 16 }]);
  });

  test('max-count, files-only, anchors and long lines', () => {
    const c = fixture();
    assert.equal(c.search.grep('v', 'o', '/docs/deep/notes.txt', { maxCount: 1 }).matches.length, 1);
    const l = c.search.grep('v', 'line', '/', { filesOnly: true });
    assert.deepEqual(l.counts.map((x) => x.path), ['/docs/guide.md']);
    assert.equal(l.matches.length, 1);
    assert.deepEqual(c.search.grep('v', 'y = 2;$').matches.map((m) => m.text), ['const y = 2;'], 'CR is not part of the line');
    c.files.write('v', '/long.txt', enc('x'.repeat(5000) + 'NEEDLE' + 'y'.repeat(5000)));
    const [m] = c.search.grep('v', 'NEEDLE', '/long.txt').matches;
    assert.ok(m!.truncated);
    assert.ok(m!.text.length <= MAX_LINE_CHARS + 2);
    assert.ok(m!.text.includes('NEEDLE'), 'the cut keeps the match in view');
    const capped = c.search.grep('v', '.', '/', { limit: 3 });
    assert.equal(capped.matches.length, 3);
    assert.equal(capped.truncated, true);
  });

  test('skips files over the size limit and reports them', () => {
    const c = fixture();
    const big = new Uint8Array(GREP_MAX_FILE_BYTES + 1).fill(0x61);
    c.files.write('v', '/huge.txt', big);
    const r = c.search.grep('v', 'a', '/');
    assert.deepEqual(r.skipped.find((s) => s.path === '/huge.txt'), { path: '/huge.txt', reason: 'too-large', size: GREP_MAX_FILE_BYTES + 1 });
    assert.ok(!r.matches.some((m) => m.path === '/huge.txt'));
  });

  test('an invalid regular expression is INVALID_ARGUMENT with the syntax error', () => {
    const c = fixture();
    assert.throws(() => c.search.grep('v', '(unclosed'), (e) => isCorralError(e, 'INVALID_ARGUMENT') && /Unterminated group/.test(e.message));
    assert.throws(() => c.search.grep('v', '[z-a]'), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => c.search.grep('v', ''), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => c.search.grep('v', 'x', '/../..'), (e) => isCorralError(e, 'INVALID_PATH'));
    assert.throws(() => c.search.grep('ghost', 'x'), (e) => isCorralError(e, 'VAULT_NOT_FOUND'));
  });
});

describe('search', () => {
  const topics = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];

  function corpus() {
    const c = openCorral();
    c.vaults.create('v');
    for (let i = 0; i < 50; i++) {
      const topic = topics[i % topics.length]!;
      c.files.write('v', `/docs/${topic}/doc-${String(i).padStart(2, '0')}.md`, enc(`Document ${i} is about ${topic}.\nfiller words to pad the body ${'lorem ipsum '.repeat(i % 7)}\n`));
    }
    // Dense and sparse mentions of one rare word: density decides the rank.
    c.files.write('v', '/rank/dense.md', enc('zephyr zephyr zephyr zephyr, all about zephyr.'));
    c.files.write('v', '/rank/sparse.md', enc(`zephyr appears once here among ${'many other words '.repeat(40)}`));
    c.files.write('v', '/rank/binary.dat', enc('zephyr\0zephyr zephyr'));
    return c;
  }

  test('ranks by bm25 and returns snippets', () => {
    const c = corpus();
    const r = c.search.search('v', 'zephyr');
    assert.deepEqual(r.results.map((x) => x.path), ['/rank/dense.md', '/rank/sparse.md'], 'binary files are not indexed');
    assert.ok(r.results[0]!.score > r.results[1]!.score);
    assert.match(r.results[0]!.snippet, /\*\*zephyr\*\*/);
    assert.equal(r.indexed, 53);
    const charlie = c.search.search('v', 'charlie', { limit: 5 });
    assert.equal(charlie.results.length, 5);
    assert.ok(charlie.results.every((x) => x.path.startsWith('/docs/charlie/')));
    assert.equal(c.search.search('v', 'charlie', { limit: 50 }).results.length, 10);
    assert.equal(c.search.search('v', 'charlie').indexed, 0, 'each blob is indexed once');
    const phrase = c.search.search('v', '"about delta"', { highlight: { open: '<', close: '>' } });
    assert.equal(phrase.results.length, 10);
    assert.match(phrase.results[0]!.snippet, /<about delta>/);
    assert.equal(c.search.search('v', 'alpha AND bravo').results.length, 0);
    assert.equal(c.search.search('v', 'alpha OR bravo').results.length, 20);
    assert.equal(c.search.search('v', 'zeph*').results.length, 2);
  });

  test('indexes content, not paths: writes, copies, restores and forks', () => {
    const c = corpus();
    c.files.write('v', '/notes.txt', enc('the old wording: marmalade'));
    assert.deepEqual(c.search.search('v', 'marmalade').results.map((x) => x.path), ['/notes.txt']);
    c.checkpoints.save('v', 'old');
    const before = c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts_docs')!.n;
    c.files.write('v', '/notes.txt', enc('the new wording: quince'));
    assert.equal(c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts_docs')!.n, before, 'a write does not touch the index');
    assert.deepEqual(c.search.search('v', 'marmalade').results, []);
    assert.deepEqual(c.search.search('v', 'quince').results.map((x) => x.path), ['/notes.txt']);
    c.files.cp('v', '/notes.txt', '/copy.txt');
    assert.deepEqual(c.search.search('v', 'quince').results.map((x) => x.path).sort(), ['/copy.txt', '/notes.txt'], 'one blob at two paths: both reported');
    c.checkpoints.restore('v', 'old');
    assert.deepEqual(c.search.search('v', 'marmalade').results.map((x) => x.path), ['/notes.txt']);
    assert.deepEqual(c.search.search('v', 'quince').results, []);
    c.vaults.fork('v', 'f');
    c.files.write('f', '/only-in-fork.txt', enc('persimmon'));
    assert.equal(c.search.search('f', 'persimmon').results.length, 1);
    assert.equal(c.search.search('v', 'persimmon').results.length, 0, 'another vault’s files never show');
  });

  test('bad queries are INVALID_ARGUMENT with a hint, and stay bound parameters', () => {
    const c = corpus();
    for (const q of ['foo-bar', '"unterminated', 'AND', '(zephyr', 'NEAR(a b', '*'])
      assert.throws(() => c.search.search('v', q), (e) => isCorralError(e, 'INVALID_ARGUMENT') && /double quotes/.test(e.message), q);
    assert.throws(() => c.search.search('v', '   '), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => c.search.search('v', 'x', { limit: 5000 }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => c.search.search('nope', 'x'), (e) => isCorralError(e, 'VAULT_NOT_FOUND'));
    const hostile = `zephyr'); DROP TABLE blobs; --`;
    assert.throws(() => c.search.search('v', hostile), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.equal(c.search.search('v', hostile, { literal: true }).results.length, 0);
    assert.ok(c.store.db.get('SELECT count(*) AS n FROM blobs'), 'blobs is still there');
    c.files.write('v', '/punct.txt', enc('call foo-bar.baz() now'));
    assert.deepEqual(c.search.search('v', 'foo-bar.baz', { literal: true }).results.map((x) => x.path), ['/punct.txt']);
  });

  test('dropIndexedBlobs removes the text of blobs gc deletes', () => {
    const c = corpus();
    c.search.search('v', 'zephyr');
    const dense = c.search.find('v', '/rank/dense.md')[0]!;
    const hash = c.files.stat('v', dense.path).hash;
    const docid = c.store.db.get<{ docid: number }>('SELECT docid FROM fts_docs WHERE hash = ?', hash)!.docid;
    assert.equal(c.store.db.transaction(() => dropIndexedBlobs(c.store.db, [hash, 'not-a-hash'])), 1);
    assert.equal(c.store.db.get('SELECT 1 AS x FROM fts_docs WHERE hash = ?', hash), undefined);
    assert.equal(c.store.db.get('SELECT 1 AS x FROM fts WHERE rowid = ?', docid), undefined);
    // Still in the head, so the next search indexes it again.
    const r = c.search.search('v', 'zephyr');
    assert.equal(r.indexed, 1);
    assert.equal(r.results[0]!.path, '/rank/dense.md');
  });
});
