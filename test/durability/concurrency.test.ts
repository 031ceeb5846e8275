// Concurrency: many processes writing to the same vault at once lose no update and make one
// linear history; gc running alongside them takes nothing they need; a compare-and-swap on a
// stale head fails with CONFLICT and changes nothing.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Corral } from '../../src/services/corral.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { corral, corralAsync, openCorral, ROOT, tempDir, testCaller } from '../helpers.ts';
import { assertHomeComplete } from './check.ts';

const WRITER = join(ROOT, 'test', 'durability', 'writer.ts');
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Worker {
  child: ChildProcess;
  lines: string[];
  ready: Promise<void>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function startWorker(args: string[]): Worker {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', WRITER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let out = '';
  let err = '';
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (markReady = r));
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    const parts = out.split('\n');
    out = parts.pop()!;
    for (const l of parts) {
      if (l === 'ready') markReady();
      else lines.push(l);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      markReady();
      resolve({ code, signal, stderr: err });
    }),
  );
  return { child, lines, ready, done };
}

function chainOf(c: Corral, vault: string): string[] {
  const chain: string[] = [];
  for (let id: string | null = c.store.getVault(vault).head; id; id = c.store.getCommit(id).parent) chain.push(id);
  return chain;
}

describe('concurrent writers', () => {
  test('8 processes writing 25 files each to one vault, with gc running alongside: no lost update', { timeout: 60_000 }, async () => {
    const home = tempDir();
    const setup = new Corral({ home, caller: testCaller });
    setup.vaults.create('shared');
    setup.close();

    const gc = startWorker(['gc', home]);
    await gc.ready;
    // Every writer starts at the same moment, once all have loaded.
    const start = Date.now() + 2500;
    const writers = Array.from({ length: 8 }, (_, id) => startWorker(['files', home, 'shared', String(id), '25', String(start)]));
    const results = await Promise.all(writers.map((w) => w.done));
    gc.child.kill('SIGKILL');
    const gcResult = await gc.done;
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.equal(gcResult.signal, 'SIGKILL', gcResult.stderr);
    assert.ok(gc.lines.length > 0, 'gc never ran');

    const reported = writers.flatMap((w) => w.lines.map((l) => l.split(' ')[2]!));
    assert.equal(reported.length, 200);
    assert.equal(new Set(reported).size, 200);

    const c = new Corral({ home, caller: testCaller });
    try {
      for (let id = 0; id < 8; id++)
        for (let i = 0; i < 25; i++) assert.equal(new TextDecoder().decode(c.files.cat('shared', `/w${id}/f${i}.txt`)), `worker ${id} file ${i}\n`);
      assert.equal(c.store.getCommit(c.store.getVault('shared').head).files, 200);
      const chain = chainOf(c, 'shared');
      assert.equal(chain.length, 201, 'create + one commit per write');
      const inChain = new Set(chain);
      assert.ok(reported.every((id) => inChain.has(id)));
      assert.equal(c.store.audit.list({ op: 'file.write', limit: 1000 }).filter((r) => r.result === 'ok').length, 200);
      assertHomeComplete(c);
    } finally {
      c.close();
    }
    const verify = corral(home, ['audit', 'verify', '--json']);
    assert.equal(verify.code, 0);
    assert.equal(verify.json.ok, true);
  });

  test('8 concurrent CLI processes writing to one vault', { timeout: 60_000 }, async () => {
    const home = tempDir();
    assert.equal(corral(home, ['vault', 'create', 'v']).code, 0);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => corralAsync(home, ['--vault', 'v', 'write', `/cli-${i}.txt`, `from process ${i}`, '--json'])));
    for (const r of results) assert.equal(r.code, 0, r.stdout + r.stderr);
    const ls = corral(home, ['--vault', 'v', 'ls', '/', '--json']);
    assert.deepEqual(ls.json.entries.map((e: { name: string }) => e.name).sort(), Array.from({ length: 8 }, (_, i) => `cli-${i}.txt`).sort());
    const log = corral(home, ['--vault', 'v', 'log', '--json']);
    assert.equal(log.json.commits.length, 9);
    assert.equal(corral(home, ['audit', 'verify', '--json']).json.ok, true);
  });
});

describe('compare-and-swap on the head', () => {
  test('swapHead with a stale expected head fails with CONFLICT and leaves the head alone', () => {
    const c = openCorral();
    const v = c.vaults.create('v');
    const first = v.head;
    const second = c.files.write('v', '/a.txt', text('a')).commit!.id;
    assert.throws(
      () => c.store.write(testCaller, 'v', { op: 'test.swap' }, () => c.store.swapHead(v.id, first, second)),
      (e) => isCorralError(e, 'CONFLICT') && /retry/.test(e.message),
    );
    assert.equal(c.store.getVault('v').head, second);
    assert.equal(c.store.audit.list({ op: 'test.swap' })[0]?.result, 'error:CONFLICT');
  });

  test('a commit built on a head another connection moved is rolled back whole', () => {
    const home = tempDir();
    const a = openCorral(home);
    const b = openCorral(home);
    a.vaults.create('v');
    const staleVault = a.store.getVault('v');
    const staleHead = a.store.getCommit(staleVault.head);
    b.files.write('v', '/from-b.txt', text('b wins'));
    const commitsBefore = a.store.db.get<{ n: number }>('SELECT count(*) AS n FROM commits')!.n;
    const blobsBefore = a.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n;
    assert.throws(
      () =>
        a.store.write(testCaller, 'v', { op: 'test.stale' }, () => {
          const blob = a.store.objects.putBlob(text('a loses'));
          const root = a.store.objects.putTree([{ name: 'from-a.txt', kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: 1 }]);
          return a.store.advanceHead(testCaller, staleVault, staleHead, { hash: root, size: blob.size, files: 1 }, { message: 'stale' });
        }),
      (e) => isCorralError(e, 'CONFLICT'),
    );
    assert.equal(a.store.db.get<{ n: number }>('SELECT count(*) AS n FROM commits')!.n, commitsBefore, 'no commit row is left behind');
    assert.equal(a.store.db.get<{ n: number }>('SELECT count(*) AS n FROM blobs')!.n, blobsBefore, 'no blob is left behind');
    assert.deepEqual(a.files.ls('v', '/').map((e) => e.name), ['from-b.txt']);
    assert.equal(a.store.audit.verify().ok, true);
  });
});
