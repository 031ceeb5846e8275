// Property tests over random operation sequences (seeded, so a failure reproduces):
// the head matches a model; restore(c) makes the head equal c's tree; diff(a, b) applied to a
// gives b; fork then write never changes the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCorral } from '../helpers.ts';
// The benchmarks' seeded PRNG: one implementation for both.
import { rng } from '../../bench/lib.ts';
import { diffTrees, walkTree, type Change } from '../../src/store/tree-diff.ts';
import type { Corral } from '../../src/services/corral.ts';
import type { ObjectStore } from '../../src/store/object-store.ts';

type Listing = Map<string, string>;

/** path -> kind:mode:hash for every file and symlink of a tree. */
function listing(objects: ObjectStore, tree: string): Listing {
  const out: Listing = new Map();
  walkTree(objects, tree, '/', (p, e) => void (e.kind !== 'dir' && out.set(p, `${e.kind}:${e.mode}:${e.hash}`)));
  return out;
}

function apply(a: Listing, changes: Change[]): Listing {
  const out = new Map(a);
  for (const c of changes) {
    if (c.change === 'deleted') out.delete(c.path);
    else out.set(c.path, `${c.kind}:${c.newMode}:${c.newHash}`);
  }
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** One random operation; errors a real user could hit (missing paths) are fine and ignored. */
function randomOp(c: Corral, vault: string, r: () => number, step: number): void {
  // '/wide' grows past a shard (MAX_LEAF entries), so sharded directories are exercised too.
  const dirs = ['/', '/a', '/a/b', '/c', '/c/d/e', '/wide', '/wide'];
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const path = () => {
    const d = pick(dirs);
    return `${d}/f${Math.floor(r() * (d === '/wide' ? 90 : 6))}`.replace('//', '/');
  };
  const dir = () => pick(dirs.slice(1));
  try {
    const x = r();
    if (x < 0.45) c.files.write(vault, path(), enc(`v${step}-${Math.floor(r() * 3)}`), { mode: r() < 0.2 ? 0o755 : undefined });
    else if (x < 0.55) c.files.rm(vault, r() < 0.5 ? path() : dir(), { recursive: true, force: true });
    else if (x < 0.65) c.files.mv(vault, path(), path());
    else if (x < 0.75) c.files.cp(vault, r() < 0.5 ? path() : dir(), path(), { recursive: true });
    else if (x < 0.8) c.files.symlink(vault, `f${Math.floor(r() * 6)}`, path());
    else if (x < 0.85) c.files.chmod(vault, path(), 0o700);
    else if (x < 0.9) c.files.touch(vault, path());
    else c.files.write(vault, path(), enc('x'), { append: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!['PATH_NOT_FOUND', 'PATH_EXISTS', 'IS_A_DIRECTORY', 'NOT_A_DIRECTORY', 'IS_A_SYMLINK', 'DIRECTORY_NOT_EMPTY', 'INVALID_ARGUMENT'].includes(code ?? '')) throw e;
  }
}

const headTree = (c: Corral, v: string) => c.store.getCommit(c.store.getVault(v).head).tree;

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`random histories keep the invariants (seed ${seed})`, () => {
    const r = rng(seed);
    const c = openCorral();
    c.vaults.create('v');
    for (let i = 0; i < 90; i += 2) c.files.write('v', `/wide/f${i}`, enc(`seed ${i}`));
    const trees: string[] = [];
    for (let step = 0; step < 150; step++) {
      randomOp(c, 'v', r, step);
      if (step % 25 === 0) {
        c.checkpoints.save('v', `s${step}`);
        trees.push(headTree(c, 'v'));
      }
    }
    // diff(a, b) applied to a gives b, for every pair of checkpoints and the head.
    const names = c.checkpoints.list('v').map((x) => x.name).concat('HEAD');
    for (const a of names)
      for (const b of names) {
        const ta = c.store.resolveRef(c.store.getVault('v'), a).tree;
        const tb = c.store.resolveRef(c.store.getVault('v'), b).tree;
        assert.deepEqual(apply(listing(c.store.objects, ta), diffTrees(c.store.objects, ta, tb)), listing(c.store.objects, tb), `diff ${a} -> ${b}`);
      }
    // restore(c) makes the head equal c's tree, and the state before stays reachable.
    for (const [i, name] of c.checkpoints.list('v').map((x) => x.name).entries()) {
      const before = c.store.getVault('v').head;
      const r2 = c.checkpoints.restore('v', name);
      assert.equal(headTree(c, 'v'), trees[i]);
      assert.equal(r2.commit.parent, before);
      assert.equal(r2.commit.origin, 'restore');
    }
    // The head's totals agree with a full walk.
    let files = 0;
    let bytes = 0;
    walkTree(c.store.objects, headTree(c, 'v'), '/', (_p, e) => {
      if (e.kind !== 'dir') {
        files++;
        bytes += e.size;
      }
    });
    const head = c.store.getCommit(c.store.getVault('v').head);
    assert.equal(head.files, files);
    assert.equal(head.size, bytes);
  });

  test(`fork then write never changes the source, nor the other way round (seed ${seed})`, () => {
    const r = rng(seed * 7919);
    const c = openCorral();
    c.vaults.create('src');
    for (let i = 0; i < 90; i += 2) c.files.write('src', `/wide/f${i}`, enc(`seed ${i}`));
    for (let i = 0; i < 15; i++) randomOp(c, 'src', r, i);
    c.vaults.fork('src', 'fork');
    const srcBefore = listing(c.store.objects, headTree(c, 'src'));
    assert.deepEqual(listing(c.store.objects, headTree(c, 'fork')), srcBefore);
    for (let i = 0; i < 25; i++) randomOp(c, 'fork', r, 100 + i);
    assert.deepEqual(listing(c.store.objects, headTree(c, 'src')), srcBefore);
    const forkNow = listing(c.store.objects, headTree(c, 'fork'));
    for (let i = 0; i < 25; i++) randomOp(c, 'src', r, 200 + i);
    assert.deepEqual(listing(c.store.objects, headTree(c, 'fork')), forkNow);
  });
}

test('file contents match a simple model after many writes', () => {
  const r = rng(42);
  const c = openCorral();
  c.vaults.create('m');
  const model = new Map<string, string>();
  for (let i = 0; i < 200; i++) {
    const p = `/d${Math.floor(r() * 4)}/f${Math.floor(r() * 8)}`;
    if (r() < 0.8) {
      const v = `value-${i}`;
      c.files.write('m', p, enc(v));
      model.set(p, v);
    } else {
      c.files.rm('m', p, { force: true });
      model.delete(p);
    }
  }
  const actual = new Map<string, string>();
  walkTree(c.store.objects, headTree(c, 'm'), '/', (p, e) => void (e.kind === 'file' && actual.set(p, new TextDecoder().decode(c.files.cat('m', p)))));
  assert.deepEqual(actual, model);
});
