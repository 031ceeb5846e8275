import { SCHEMA_VERSION } from '../../src/store/database.ts';
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { corral, openCorral, tempDir, testCaller } from '../helpers.ts';
import { balancedParentheses, compileGlob, parseSizeTest, GREP_MAX_FILE_BYTES, GREP_MAX_LINE_CHARS, GREP_TIME_BUDGET_MS, MAX_LINE_CHARS } from '../../src/services/search-service.ts';
import { Corral } from '../../src/services/corral.ts';
import { escapeControls } from '../../src/cli/output.ts';
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

  test('a pattern that backtracks without end stops at the time budget, keeping what it found', () => {
    const c = fixture();
    c.files.write('v', '/0-early.txt', enc('aaaa\nbbbb\naa\n'));
    // Each run of a's followed by b costs (a+)+$ 2^40 steps: this line alone would never finish.
    c.files.write('v', '/evil.txt', enc(('a'.repeat(40) + 'b').repeat(3000) + '\n'));
    c.files.write('v', '/z-late.txt', enc('aaa\n'));
    const started = performance.now();
    const r = c.search.grep('v', '(a+)+$', '/', { timeBudgetMs: 1000 });
    const ms = performance.now() - started;
    assert.ok(ms < 5000, `grep took ${ms} ms`);
    assert.equal(r.timedOut, true);
    assert.equal(r.truncated, true);
    // What came before the stuck file is there, and the counts agree with it.
    assert.deepEqual(r.matches.map((m) => `${m.path}:${m.line}`), ['/0-early.txt:1', '/0-early.txt:3']);
    assert.deepEqual(r.counts, [{ path: '/0-early.txt', count: 2 }]);
    assert.equal(r.files, 1);
    assert.ok(!r.matches.some((m) => m.path === '/z-late.txt'), 'nothing after the stuck file was searched');
    // The store and the regular expression engine are fine afterwards.
    const again = c.search.grep('v', 'TODO');
    assert.equal(again.timedOut, false);
    assert.equal(again.matches.length, 2);
    c.files.write('v', '/after.txt', enc('still writable'));
    assert.equal(GREP_TIME_BUDGET_MS, 10_000);
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 40])
      assert.throws(() => c.search.grep('v', 'x', '/', { timeBudgetMs: bad }), (e) => isCorralError(e, 'INVALID_ARGUMENT'), String(bad));
  });

  test('a line longer than GREP_MAX_LINE_CHARS is matched on its start only, and reported as truncated', () => {
    const c = fixture();
    c.files.write('v', '/long.txt', enc(`NEEDLE ${'x'.repeat(GREP_MAX_LINE_CHARS)}\n${'y'.repeat(GREP_MAX_LINE_CHARS)} HAYSTACK\nHAYSTACK\n`));
    const head = c.search.grep('v', 'NEEDLE', '/long.txt');
    assert.deepEqual(head.matches.map((m) => [m.line, m.truncated]), [[1, true]]);
    assert.ok(head.matches[0]!.text.startsWith('NEEDLE '));
    // Past the first GREP_MAX_LINE_CHARS characters of line 2, HAYSTACK is not seen; line 3 is short.
    assert.deepEqual(c.search.grep('v', 'HAYSTACK', '/long.txt').matches.map((m) => m.line), [3]);
  });

  test('the CLI stops grep at --timeout and says so', () => {
    const home = tempDir();
    assert.equal(corral(home, ['vault', 'create', 'v', '--use']).code, 0);
    assert.equal(corral(home, ['write', '/evil.txt', 'a'.repeat(40) + 'b']).code, 0);
    const started = performance.now();
    const j = corral(home, ['grep', '(a+)+$', '--timeout', '1', '--json']);
    assert.ok(performance.now() - started < 8000);
    assert.equal(j.code, 0, j.stderr);
    assert.equal(j.json.timedOut, true);
    assert.equal(j.json.truncated, true);
    const h = corral(home, ['grep', '(a+)+$', '--timeout', '1']);
    assert.equal(h.code, 0);
    assert.match(h.stderr, /stopped after 1 s/);
    assert.equal(corral(home, ['grep', 'x', '--timeout', '0', '--json']).json.error.code, 'INVALID_ARGUMENT');
    const help = corral(home, ['grep', '--help']).stdout;
    assert.match(help, /--timeout <seconds>/);
    assert.match(help, /first 64 Ki characters/);
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
    assert.equal(r.indexed, 52, 'one document per text file');
    const charlie = c.search.search('v', 'charlie', { limit: 5 });
    assert.equal(charlie.results.length, 5);
    assert.ok(charlie.results.every((x) => x.path.startsWith('/docs/charlie/')));
    assert.equal(c.search.search('v', 'charlie', { limit: 50 }).results.length, 10);
    assert.equal(c.search.search('v', 'charlie').indexed, 0, 'an unchanged head is not indexed again');
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
    const index = () => c.store.db.all('SELECT * FROM fts_paths ORDER BY vault_id, path');
    const before = index();
    c.files.write('v', '/notes.txt', enc('the new wording: quince'));
    assert.deepEqual(index(), before, 'a write does not touch the index');
    assert.deepEqual(c.search.search('v', 'marmalade').results, []);
    assert.deepEqual(c.search.search('v', 'quince').results.map((x) => x.path), ['/notes.txt']);
    c.files.cp('v', '/notes.txt', '/copy.txt');
    assert.deepEqual(c.search.search('v', 'quince').results.map((x) => x.path).sort(), ['/copy.txt', '/notes.txt'], 'one blob at two paths: both reported');
    c.checkpoints.restore('v', 'old');
    assert.deepEqual(c.search.search('v', 'marmalade').results.map((x) => x.path), ['/notes.txt']);
    assert.deepEqual(c.search.search('v', 'quince').results, []);
    const beforeFork = index();
    c.vaults.fork('v', 'f');
    assert.deepEqual(index(), beforeFork, 'a fork does not touch the index');
    c.files.write('f', '/only-in-fork.txt', enc('persimmon'));
    const fork = c.search.search('f', 'persimmon');
    assert.equal(fork.results.length, 1);
    assert.equal(fork.indexed, 54, 'a fork builds its own index at its first search');
    assert.deepEqual(c.search.search('f', 'marmalade').results.map((x) => x.path), ['/notes.txt']);
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

  test('rm, mv, chmod and a directory replaced by a file', () => {
    const c = corpus();
    assert.equal(c.search.search('v', 'zephyr').results.length, 2);
    c.files.rm('v', '/rank/sparse.md');
    const afterRm = c.search.search('v', 'zephyr');
    assert.deepEqual(afterRm.results.map((x) => x.path), ['/rank/dense.md']);
    assert.equal(afterRm.indexed, 0, 'a deletion adds nothing');
    c.files.mv('v', '/rank/dense.md', '/moved/dense.md');
    assert.deepEqual(c.search.search('v', 'zephyr').results.map((x) => x.path), ['/moved/dense.md']);
    c.files.chmod('v', '/moved/dense.md', 0o600);
    const afterChmod = c.search.search('v', 'zephyr');
    assert.deepEqual(afterChmod.results.map((x) => x.path), ['/moved/dense.md']);
    assert.equal(afterChmod.indexed, 0, 'a change of mode keeps the document');
    c.files.rm('v', '/docs', { recursive: true });
    c.files.write('v', '/docs', enc('charlie is now a file'));
    assert.deepEqual(c.search.search('v', 'charlie').results.map((x) => x.path), ['/docs']);
    // A text file that becomes binary, and back.
    c.files.write('v', '/moved/dense.md', enc('zephyr\0binary'));
    assert.deepEqual(c.search.search('v', 'zephyr').results, []);
    c.files.write('v', '/moved/dense.md', enc('zephyr again'));
    assert.deepEqual(c.search.search('v', 'zephyr').results.map((x) => x.path), ['/moved/dense.md']);
    const rows = c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts')!.n;
    assert.equal(rows, c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts_paths')!.n, 'every document has its path row');
    assert.equal(rows, c.search.find('v', '/', { type: 'f' }).length - 1, 'one document per text file of the head (binary.dat has none)');
  });

  test('a historic version of a file is not in the index once the file changed', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/f.txt', enc('apricot version'));
    c.search.search('v', 'version');
    c.checkpoints.save('v', 'one');
    c.files.write('v', '/f.txt', enc('blueberry version'));
    assert.deepEqual(c.search.search('v', 'apricot').results, []);
    assert.equal(c.store.db.get<{ n: number }>("SELECT count(*) AS n FROM fts WHERE fts MATCH 'apricot'")!.n, 0, 'the old text left the index');
    assert.equal(c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts')!.n, 1);
    c.checkpoints.restore('v', 'one');
    assert.deepEqual(c.search.search('v', 'apricot').results.map((x) => x.path), ['/f.txt']);
    assert.deepEqual(c.search.search('v', 'blueberry').results, []);
  });

  test('a search never returns another vault’s files, whatever the query', () => {
    const c = openCorral();
    c.vaults.create('a');
    c.vaults.create('b');
    c.files.write('a', '/a.txt', enc('zephyr public words'));
    c.files.write('b', '/b.txt', enc('zephyr secret words'));
    c.search.search('b', 'secret');
    const ids = Object.fromEntries(c.store.db.all<{ name: string; id: number }>('SELECT name, id FROM vaults').map((r) => [r.name, r.id]));
    const a = `v${ids.a}`;
    const b = `v${ids.b}`;
    assert.deepEqual(c.search.search('b', 'secret').results.map((x) => x.path), ['/b.txt'], 'the words are there to find');
    const hostile = [
      'secret', 'zephyr', 'zephyr OR secret', 'secret) OR (secret', 'x) OR body:(secret', 'x)) OR ((secret', '"x") OR ("secret"',
      `scope : ${b}`, `scope:${b}`, `{scope} : ${b}`, `${b}`, `zephyr OR scope : ${b}`, `- body : ${b}`, `{scope body} : ${b}`,
      'NEAR(zephyr secret)', '- scope : secret', 'path : secret', 'secret OR path : x', '^secret', 'secr*', '"secret"',
    ];
    for (const q of hostile) {
      let paths: string[] = [];
      try {
        paths = c.search.search('a', q).results.map((x) => x.path);
      } catch (e) {
        assert.ok(isCorralError(e, 'INVALID_ARGUMENT'), `${q}: ${String(e)}`);
      }
      assert.ok(!paths.includes('/b.txt'), `query ${q} reached vault b`);
      assert.deepEqual(c.search.search('a', q, { literal: true }).results.filter((x) => x.path === '/b.txt'), [], q);
    }
    assert.deepEqual(c.search.search('a', 'zephyr').results.map((x) => x.path), ['/a.txt']);
    assert.deepEqual(c.search.search('a', a).results, [], 'the scope token is not searchable text');
    assert.throws(() => c.search.search('a', 'secret) OR (secret'), (e) => isCorralError(e, 'INVALID_ARGUMENT') && /unbalanced parentheses/.test(e.message));
  });

  test('balancedParentheses ignores parentheses inside FTS5 strings', () => {
    for (const q of ['a', '(a)', '((a) OR b)', '"a)"', '"a""(" b', 'NEAR(a b, 2)', '"unterminated (', ''])
      assert.equal(balancedParentheses(q), true, q);
    for (const q of ['a)', ')(', '(a', 'a) OR (b', '"x") OR ("y"', '"a"")" )', '(()'])
      assert.equal(balancedParentheses(q), false, q);
  });

  test('an index that is current is only read: no write lock is taken', () => {
    const c = corpus();
    c.search.search('v', 'zephyr');
    const state = () => c.store.db.all('SELECT * FROM fts_state');
    const before = state();
    const other = new Corral({ home: c.store.home, caller: testCaller, busyTimeoutMs: 50 });
    const lock = new DatabaseSync(join(c.store.home, 'corral.db'));
    try {
      lock.exec('BEGIN IMMEDIATE');
      const r = other.search.search('v', 'zephyr');
      assert.equal(r.indexed, 0);
      assert.deepEqual(r.results.map((x) => x.path), ['/rank/dense.md', '/rank/sparse.md']);
      lock.exec('ROLLBACK');
      c.files.write('v', '/new.txt', enc('zephyr news'));
      lock.exec('BEGIN IMMEDIATE');
      assert.throws(() => other.search.search('v', 'zephyr'), (e) => isCorralError(e, 'STORAGE_BUSY'), 'catching up needs the write lock');
      lock.exec('ROLLBACK');
      const caught = other.search.search('v', 'zephyr');
      assert.equal(caught.indexed, 1);
      assert.equal(caught.results.length, 3);
      assert.notDeepEqual(state(), before);
      const after = state();
      lock.exec('BEGIN IMMEDIATE');
      assert.equal(c.search.search('v', 'zephyr').indexed, 0, 'another process caught the index up');
      lock.exec('ROLLBACK');
      assert.deepEqual(state(), after);
    } finally {
      lock.close();
      other.close();
    }
  });

  test('deleting a vault drops its index, so a vault that reuses its id starts clean', () => {
    const c = openCorral();
    c.vaults.create('keep');
    c.files.write('keep', '/k.txt', enc('kiwi'));
    c.vaults.create('gone');
    c.files.write('gone', '/g.txt', enc('guava'));
    c.files.write('gone', '/h.txt', enc('guava too'));
    assert.equal(c.search.search('gone', 'guava').results.length, 2);
    assert.equal(c.search.search('keep', 'kiwi').results.length, 1);
    const id = c.store.getVault('gone').id;
    c.vaults.delete('gone', true);
    assert.equal(c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts_paths WHERE vault_id = ?', id)!.n, 0);
    assert.equal(c.store.db.get('SELECT 1 AS x FROM fts_state WHERE vault_id = ?', id), undefined);
    assert.equal(c.store.db.get<{ n: number }>("SELECT count(*) AS n FROM fts WHERE fts MATCH 'guava'")!.n, 0);
    assert.equal(c.store.db.get<{ n: number }>('SELECT count(*) AS n FROM fts')!.n, 1, 'the other vault keeps its index');
    c.vaults.create('next');
    assert.equal(c.store.getVault('next').id, id, 'SQLite reuses the largest id');
    assert.deepEqual(c.search.search('next', 'guava').results, []);
    assert.deepEqual(c.search.search('keep', 'kiwi').results.map((x) => x.path), ['/k.txt']);
  });

  test('after gc collected the tree the index reflects, the index is reconciled with the head', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/same.txt', enc('steady text'));
    c.files.write('v', '/changed.txt', enc('before text'));
    const start = c.files.write('v', '/binary.dat', enc('text\0binary')).commit!.id;
    c.files.write('v', '/changed.txt', enc('after text'));
    c.files.write('v', '/doomed.txt', enc('doomed text'));
    assert.equal(c.search.search('v', 'text').results.length, 3);
    const indexedAt = c.store.db.get<{ tree: string }>('SELECT tree FROM fts_state')!.tree;
    const sameDoc = c.store.db.get<{ docid: number }>("SELECT docid FROM fts_paths WHERE path = '/same.txt'")!.docid;
    // A history rewrite leaves the indexed head unreachable; gc collects it before any search.
    const v = c.store.getVault('v');
    c.store.write(testCaller, 'v', { op: 'test.reset' }, () => c.store.swapHead(v.id, v.head, start));
    c.maintenance.gc({ graceSeconds: 0 });
    assert.equal(c.store.db.get('SELECT 1 AS x FROM trees WHERE hash = ?', indexedAt), undefined, 'gc collected the indexed tree');
    // A fresh connection, with no tree cached (as another process would be).
    const fresh = openCorral(c.store.home);
    const r = fresh.search.search('v', 'text');
    assert.deepEqual(r.results.map((x) => x.path).sort(), ['/changed.txt', '/same.txt']);
    assert.equal(r.indexed, 1, 'only the files that differ are indexed again');
    assert.equal(fresh.store.db.get<{ docid: number }>("SELECT docid FROM fts_paths WHERE path = '/same.txt'")!.docid, sameDoc);
    assert.deepEqual(fresh.search.search('v', 'after OR doomed').results, []);
    assert.deepEqual(fresh.search.search('v', 'before').results.map((x) => x.path), ['/changed.txt']);
    assert.equal(fresh.search.search('v', 'text').indexed, 0);
  });

  test('a home indexed by blob (schema 1) moves to the per-vault index when opened', () => {
    const c = openCorral();
    c.vaults.create('v');
    c.files.write('v', '/a.txt', enc('quince jelly'));
    const home = c.store.home;
    c.close();
    const old = new DatabaseSync(join(home, 'corral.db'));
    // Back to schema 1: every table and column a later migration adds is dropped (add new ones here).
    old.exec(`DROP TABLE fts; DROP TABLE fts_paths; DROP TABLE fts_state; DROP TABLE checkouts; DROP TABLE approvals; DROP TABLE leases; DROP TABLE lease_recovery; DROP TABLE sandboxes; DROP TABLE execs; DROP TABLE tenants; DROP TABLE api_keys; DROP TABLE exec_output; DROP TABLE processes; ALTER TABLE vaults DROP COLUMN tenant;
      CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'unicode61');
      CREATE TABLE fts_docs (hash TEXT PRIMARY KEY, docid INTEGER NOT NULL UNIQUE);
      INSERT INTO fts(rowid, body) VALUES (1, 'stale text');
      INSERT INTO fts_docs VALUES ('0000', 1);
      INSERT INTO settings VALUES ('fts_generation', '3');
      PRAGMA user_version = 1;`);
    old.close();
    const reopened = openCorral(home);
    assert.equal(reopened.store.db.get<{ user_version: number }>('PRAGMA user_version')!.user_version, SCHEMA_VERSION);
    assert.equal(reopened.store.db.get("SELECT 1 AS x FROM sqlite_schema WHERE name = 'fts_docs'"), undefined);
    assert.equal(reopened.store.getSetting('fts_generation'), undefined);
    const r = reopened.search.search('v', 'quince');
    assert.deepEqual(r.results.map((x) => x.path), ['/a.txt']);
    assert.equal(r.indexed, 1);
    assert.deepEqual(reopened.search.search('v', 'stale').results, []);
  });

  test('progress is reported while the index catches up', () => {
    const c = corpus();
    const seen: [number, number][] = [];
    c.search.search('v', 'zephyr', { onProgress: (done, total) => seen.push([done, total]) });
    assert.ok(seen.length >= 2);
    assert.deepEqual(seen[seen.length - 1], [53, 53]);
    seen.length = 0;
    c.search.search('v', 'zephyr', { onProgress: (done, total) => seen.push([done, total]) });
    assert.deepEqual(seen, []);
  });
});

describe('terminal output', () => {
  test('escapeControls shows C0, DEL, C1 and bidi characters as escapes, doubles backslashes, and leaves other text alone', () => {
    assert.equal(escapeControls('a\x1b[31mb\x07\x7f\x9b\tc'), 'a\\x1b[31mb\\x07\\x7f\\x9b\\x09c');
    // A literal backslash-x1b in a name cannot pass for an escaped ESC.
    assert.equal(escapeControls('/plain/ünïcode ✓ \\x1b.txt'), '/plain/ünïcode ✓ \\\\x1b.txt');
    assert.equal(escapeControls('evil\u202etxt.exe'), 'evil\\u202etxt.exe');
  });

  test('control characters in vault names are escaped in human output and exact in --json', () => {
    const home = tempDir();
    const ok = (args: string[]): string => {
      const r = corral(home, args);
      assert.equal(r.code, 0, r.stderr);
      // No control character but the line breaks between lines (colour is off: NO_COLOR, no TTY).
      assert.ok(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(r.stdout), `${args.join(' ')}: ${JSON.stringify(r.stdout)}`);
      return r.stdout;
    };
    const json = (args: string[]): any => {
      const r = corral(home, [...args, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return r.json;
    };
    const evil = '/evil\x1b[31m.txt';
    const shown = '/evil\\x1b[31m.txt';
    const twoLines = '/two\nlines\x07.txt';
    const twoShown = '/two\\x0alines\\x07.txt';
    ok(['vault', 'create', 'v', '--use']);
    assert.match(ok(['write', evil, 'needle one\n']), new RegExp(`wrote ${shown.replaceAll('\\', '\\\\').replaceAll('[', '\\[')}`));
    ok(['write', twoLines, 'needle two\n', '-m', 'title \x1b]0;pwned\x07']);

    const ls = ok(['ls']);
    assert.ok(ls.includes('evil\\x1b[31m.txt') && ls.includes('two\\x0alines\\x07.txt'), ls);
    assert.deepEqual(json(['ls']).entries.map((e: { name: string }) => e.name).sort(), ['evil\x1b[31m.txt', 'two\nlines\x07.txt']);
    assert.ok(ok(['tree']).includes('evil\\x1b[31m.txt'));
    assert.ok(ok(['stat', evil]).includes(`path   ${shown}`));
    assert.deepEqual(ok(['find', '/', '--type', 'f']).trimEnd().split('\n').sort(), [shown, twoShown].sort());
    assert.deepEqual(json(['find', '/', '--type', 'f']).matches.map((m: { path: string }) => m.path).sort(), [evil, twoLines].sort());
    assert.deepEqual(ok(['grep', 'needle']).trimEnd().split('\n').sort(), [`${shown}:needle one`, `${twoShown}:needle two`].sort());
    assert.deepEqual(json(['grep', 'needle']).matches.map((m: { path: string }) => m.path).sort(), [evil, twoLines].sort());
    assert.ok(ok(['search', 'needle']).includes(shown));
    assert.ok(ok(['log']).includes('title \\x1b]0;pwned\\x07'));
    const diff = ok(['diff', 'HEAD~1', 'HEAD', '-p']);
    assert.ok(diff.includes(`A ${twoShown}`), diff);
    assert.ok(diff.includes('+++ b/two\\x0alines\\x07.txt\n'), diff);
    assert.ok(diff.includes('--- /dev/null\n'), diff);
    assert.ok(diff.includes('+needle two\n'), diff);
  });
});
