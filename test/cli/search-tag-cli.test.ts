import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { corral, openCorral, tempDir } from '../helpers.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('find, grep, search, tag and meta through bin/corral', () => {
  const home = tempDir();
  // Set up in-process (fast), then drive the real CLI against the same home.
  const setup = openCorral(home);
  setup.vaults.create('v');
  setup.vaults.use('v');
  setup.files.write('v', '/notes/plan.md', enc('# Plan\nTODO: ship the search\nremember the milk\n'));
  setup.files.write('v', '/notes/old.md', enc('an archived plan\n'));
  setup.files.write('v', '/src/main.ts', enc('// todo: tidy\nexport {};\n'));
  setup.files.write('v', '/blob.bin', enc('TODO\0\0'));
  setup.close();

  const find = corral(home, ['find', '/', '--name', '*.md', '--type', 'f', '--json']);
  assert.equal(find.code, 0, find.stderr);
  assert.deepEqual(find.json.matches.map((m: { path: string }) => m.path), ['/notes/old.md', '/notes/plan.md']);
  assert.deepEqual(Object.keys(find.json.matches[0]).sort(), ['kind', 'mode', 'mtime', 'path', 'size']);
  const human = corral(home, ['find', '/notes', '--mindepth', '1']);
  assert.equal(human.stdout, '/notes/old.md\n/notes/plan.md\n');

  const grep = corral(home, ['grep', '-i', 'todo', '--json']);
  assert.equal(grep.code, 0, grep.stderr);
  assert.deepEqual(grep.json.matches, [
    { path: '/notes/plan.md', line: 2, text: 'TODO: ship the search' },
    { path: '/src/main.ts', line: 1, text: '// todo: tidy' },
  ]);
  assert.equal(grep.json.files, 2);
  assert.deepEqual(grep.json.skipped, [{ path: '/blob.bin', reason: 'binary', size: 6 }]);
  assert.equal(corral(home, ['grep', '-n', 'milk']).stdout, '/notes/plan.md:3:remember the milk\n');
  assert.equal(corral(home, ['grep', '-c', '-i', 'todo']).stdout, '/notes/plan.md:1\n/src/main.ts:1\n');
  assert.equal(corral(home, ['grep', '-l', 'plan', '/notes']).stdout, '/notes/old.md\n');
  const badRegex = corral(home, ['grep', '(', '--json']);
  assert.equal(badRegex.code, 2);
  assert.equal(badRegex.json.error.code, 'INVALID_ARGUMENT');

  const search = corral(home, ['search', 'plan', '--json']);
  assert.equal(search.code, 0, search.stderr);
  assert.deepEqual(search.json.results.map((r: { path: string }) => r.path).sort(), ['/notes/old.md', '/notes/plan.md']);
  assert.match(search.json.results[0].snippet, /\*\*plan\*\*/i);
  assert.equal(typeof search.json.results[0].score, 'number');
  const badQuery = corral(home, ['search', 'foo-bar', '--json']);
  assert.equal(badQuery.json.error.code, 'INVALID_ARGUMENT');
  assert.match(badQuery.json.error.message, /double quotes/);

  assert.equal(corral(home, ['tag', '/notes/plan.md', 'important', 'draft']).code, 0);
  assert.deepEqual(corral(home, ['tag', '/notes/plan.md', '--json']).json, { path: '/notes/plan.md', tags: ['draft', 'important'] });
  assert.equal(corral(home, ['untag', '/notes/plan.md', 'draft']).code, 0);
  assert.deepEqual(corral(home, ['tags', '--json']).json, { tags: [{ tag: 'important', count: 1 }] });
  assert.equal(corral(home, ['tag', '--find', 'important']).stdout, '/notes/plan.md\n');
  const missing = corral(home, ['tag', '/nope', 'x', '--json']);
  assert.equal(missing.code, 3);
  assert.equal(missing.json.error.code, 'PATH_NOT_FOUND');

  assert.equal(corral(home, ['meta', 'set', '/notes/plan.md', 'status', 'in review']).code, 0);
  assert.equal(corral(home, ['meta', 'get', '/notes/plan.md', 'status']).stdout, 'in review\n');
  assert.deepEqual(corral(home, ['meta', 'get', '/notes/plan.md', '--json']).json, { path: '/notes/plan.md', meta: { status: 'in review' } });
  assert.equal(corral(home, ['find', '/', '--tag', 'important', '--meta', 'status=in review']).stdout, '/notes/plan.md\n');

  const file = join(tempDir(), 'attrs.json');
  assert.equal(corral(home, ['meta', 'export', '--output', file]).code, 0);
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  assert.deepEqual(doc, { version: 1, vault: 'v', paths: { '/notes/plan.md': { tags: ['important'], meta: { status: 'in review' } } } });
  assert.equal(corral(home, ['meta', 'delete', '/notes/plan.md', 'status']).code, 0);
  const gone = corral(home, ['meta', 'delete', '/notes/plan.md', 'status', '--json']);
  assert.equal(gone.json.error.code, 'META_NOT_FOUND');
  const bad = corral(home, ['meta', 'import', '-', '--json'], { input: '{"version":1,"paths":{"/notes/plan.md":{"tags":["a b"]}}}' });
  assert.equal(bad.json.error.code, 'INVALID_ARGUMENT');
  const imported = corral(home, ['meta', 'import', file, '--json']);
  assert.equal(imported.code, 0, imported.stderr);
  assert.equal(imported.json.metaSet, 1);
  assert.equal(corral(home, ['meta', 'get', '/notes/plan.md', 'status']).stdout, 'in review\n');

  const help = corral(home, ['grep', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Examples:/);
});
