// The torture list, run through both change detectors: the stat index on a plain directory and a
// real overlay mount (warm checkout as lower, fresh upper). Both must give the same commit tree and
// the same summary, and the warm checkout must match the commit once synced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tempDir, testCaller } from '../helpers.ts';
import { Corral } from '../../src/services/corral.ts';
import { readUpperChanges } from '../../src/runtime/overlay-changes.ts';
import type { FsChangeSet } from '../../src/runtime/fs-changes.ts';
import type { FileChange } from '../../src/services/checkout-service.ts';

const NOW = 1_700_000_000_000;

/** A Corral whose clock reads NOW while the base is written and NOW + 1 s after: both paths' commits get the same times, unlike the base's. */
function openFixed(): Corral {
  let clock = NOW;
  const c = new Corral({ home: tempDir('corral-ovl-'), caller: testCaller, now: () => clock });
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  c.vaults.create('base');
  c.files.write('base', '/a.txt', enc('hello'));
  c.files.write('base', '/b.txt', enc('world!'));
  c.files.write('base', '/exec.sh', enc('#!/bin/sh\n'), { mode: 0o755 });
  c.files.symlink('base', 'a.txt', '/link');
  c.files.write('base', '/dir/x', enc('x'));
  c.files.write('base', '/dir/sub/y', enc('y'));
  c.files.write('base', '/tree/t1', enc('1'));
  c.files.write('base', '/tree/deep/t2', enc('2'));
  c.files.write('base', '/hard.txt', enc('hard'));
  c.files.mkdir('base', '/emptydir');
  clock = NOW + 1000;
  return c;
}

/** Runs `script` in an overlay over `lower`; returns the upper dir and its opaque dirs, or undefined when overlays cannot be mounted here. */
function runInOverlay(lower: string, script: string): { upper: string; opaque: Set<string> } | undefined {
  const t = tempDir('corral-ovl-run-');
  const [upper, work, merged] = ['U', 'W', 'M'].map((n) => join(t, n)) as [string, string, string];
  for (const d of [upper, work, merged]) mkdirSync(d);
  const r = spawnSync('unshare', ['-Urm', 'sh', '-c', 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3,userxattr" "$4" || exit 99; cd "$4" && eval "$5"', 'sh', lower, upper, work, merged, script], { encoding: 'utf8' });
  if (r.status === 99 || r.error) return undefined;
  assert.equal(r.status, 0, `overlay script failed: ${r.stderr}`);
  return { upper, opaque: opaqueDirs(upper) };
}

/** Upper-relative paths of directories marked opaque (user.overlay.opaque = "y"). */
export function opaqueDirs(upper: string): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (!lstatSync(p).isDirectory()) continue;
      const r = rel ? `${rel}/${name}` : name;
      const g = spawnSync('getfattr', ['--only-values', '-n', 'user.overlay.opaque', '--', p], { encoding: 'utf8' });
      if (g.status === 0 && g.stdout === 'y') out.add(r);
      walk(p, r);
    }
  };
  walk(upper, '');
  return out;
}

function runInPlace(dir: string, script: string): void {
  const r = spawnSync('sh', ['-c', script], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `script failed: ${r.stderr}`);
}

interface Outcome {
  tree: string;
  changes: FileChange[];
  skipped: FsChangeSet['skipped'];
  committed: boolean;
}

const sortSkipped = (s: FsChangeSet['skipped']): FsChangeSet['skipped'] => [...s].sort((a, b) => (a.path < b.path ? -1 : 1));

/** Runs one scenario both ways (in a fork each) and checks they agree; returns the stat path's outcome. */
function bothWays(c: Corral, name: string, script: string): Outcome {
  c.vaults.fork('base', `${name}-stat`);
  c.vaults.fork('base', `${name}-ovl`);

  const warmS = c.checkouts.warm(`${name}-stat`);
  runInPlace(warmS.dir, script);
  const setS = c.checkouts.scan(warmS.id);
  const rS = c.checkouts.commitChanges(`${name}-stat`, setS, { message: name, op: 'test.commit', origin: 'exec' });
  const stat: Outcome = { tree: c.store.headTree(`${name}-stat`), changes: rS.changes, skipped: sortSkipped(setS.skipped), committed: rS.commit !== null };
  // The in-place writes are thrown away or become the commit: afterwards the directory matches the head exactly.
  c.checkouts.syncTo(warmS.id, c.store.getVault(`${name}-stat`).head);
  assert.deepEqual(c.checkouts.scan(warmS.id).changes, [], `${name}: the stat checkout matches its head after syncTo`);

  const warmO = c.checkouts.warm(`${name}-ovl`);
  const ovl = runInOverlay(warmO.dir, script);
  if (!ovl) return stat;
  const setO = readUpperChanges(ovl.upper, warmO.dir, ovl.opaque);
  const rO = c.checkouts.commitChanges(`${name}-ovl`, setO, { message: name, op: 'test.commit', origin: 'exec' });
  const over: Outcome = { tree: c.store.headTree(`${name}-ovl`), changes: rO.changes, skipped: sortSkipped(setO.skipped), committed: rO.commit !== null };
  assert.deepEqual(over, stat, `${name}: overlay and stat index agree`);
  // The overlay never touched the lower: syncing without a scan is enough.
  c.checkouts.syncTo(warmO.id, c.store.getVault(`${name}-ovl`).head, { scan: false });
  assert.deepEqual(c.checkouts.scan(warmO.id).changes, [], `${name}: the overlay's lower matches its head after syncTo`);
  return stat;
}

function overlayWorks(): boolean {
  const t = tempDir('corral-ovl-probe-');
  mkdirSync(join(t, 'L'));
  return runInOverlay(join(t, 'L'), 'true') !== undefined;
}

const brief = (changes: FileChange[]): string[] => changes.map((ch) => `${ch.change} ${ch.kind} ${ch.path}`);

const scenarios: { name: string; script: string; expect: string[]; check?: (o: Outcome) => void }[] = [
  { name: 'new-file', script: 'echo new > new.txt', expect: ['added file /new.txt'] },
  { name: 'racy-same-size', script: 'printf HELLO > a.txt', expect: ['modified file /a.txt'] },
  { name: 'truncate', script: ': > b.txt', expect: ['modified file /b.txt'], check: (o) => assert.equal(o.changes[0]!.size, 0) },
  { name: 'rename-over', script: 'printf replaced > tmp && mv tmp b.txt && mv a.txt hard.txt', expect: ['deleted file /a.txt', 'modified file /b.txt', 'modified file /hard.txt'] },
  { name: 'chmod-only', script: 'chmod 600 a.txt && chmod 700 dir', expect: ['modified file /a.txt', 'modified dir /dir'], check: (o) => assert.deepEqual([o.changes[0]!.mode, o.changes[0]!.oldMode], [0o600, 0o644]) },
  { name: 'chmod-back-and-touch', script: 'chmod 600 a.txt && chmod 644 a.txt && touch b.txt && touch -d 2001-01-01 exec.sh', expect: [], check: (o) => assert.equal(o.committed, false) },
  {
    name: 'symlink-swap',
    script: 'rm a.txt && ln -s b.txt a.txt && ln -sfn dir link',
    expect: ['modified symlink /a.txt', 'modified symlink /link'],
    check: (o) => {
      assert.equal(o.changes[0]!.oldKind, 'file');
      assert.deepEqual([o.changes[1]!.target, o.changes[1]!.oldTarget], ['dir', 'a.txt']);
    },
  },
  { name: 'delete-tree', script: 'rm -rf dir', expect: ['deleted file /dir/sub/y', 'deleted file /dir/x'] },
  { name: 'delete-recreate-opaque', script: 'rm -rf dir && mkdir -p dir/sub && printf x > dir/x && printf y2 > dir/sub/y', expect: ['modified file /dir/sub/y'] },
  { name: 'delete-recreate-identical', script: 'rm -rf tree && mkdir -p tree/deep && printf 1 > tree/t1 && printf 2 > tree/deep/t2', expect: [], check: (o) => assert.equal(o.committed, false) },
  { name: 'hard-link-write', script: 'ln hard.txt hl && echo more >> hl', expect: ['modified file /hard.txt', 'added file /hl'] },
  { name: 'mkdir-empty', script: 'mkdir newempty', expect: ['added dir /newempty'] },
  { name: 'rmdir', script: 'rmdir emptydir', expect: ['deleted dir /emptydir'] },
  { name: 'fifo', script: 'mkfifo ff && rm b.txt && mkfifo b.txt', expect: ['deleted file /b.txt'], check: (o) => assert.deepEqual(o.skipped.map((s) => s.path), ['/b.txt', '/ff']) },
  { name: 'outside-symlink', script: 'ln -s /etc/shadow shadow', expect: ['added symlink /shadow'], check: (o) => assert.equal(o.changes[0]!.target, '/etc/shadow') },
  { name: 'newline-name', script: 'printf x > "$(printf \'nl\\nname\')"', expect: ['added file /nl\nname'] },
  { name: 'file-to-dir-and-back', script: 'rm b.txt && mkdir b.txt && printf q > b.txt/q && rm -rf dir && printf f > dir', expect: ['deleted file /b.txt', 'added file /b.txt/q', 'added file /dir', 'deleted file /dir/sub/y', 'deleted file /dir/x'] },
];

test('the torture list: the stat index and an overlay upper give the same commit and summary', (t) => {
  const c = openFixed();
  t.after(() => c.close());
  const overlay = overlayWorks();
  if (!overlay) t.diagnostic('overlay mounts are not available here: only the stat index path ran');
  for (const s of scenarios) {
    const o = bothWays(c, s.name, s.script);
    assert.deepEqual(brief(o.changes), s.expect, s.name);
    s.check?.(o);
  }
  // Everything at once, in one exec.
  const all = bothWays(c, 'all', scenarios.filter((s) => !s.name.startsWith('file-to-dir') && s.name !== 'rename-over').map((s) => s.script).join(' && '));
  assert.ok(all.committed);
});

test('readUpperChanges walks only the upper: whiteouts delete, opaque dirs replace, specials are skipped', (t) => {
  const c = openFixed();
  t.after(() => c.close());
  const warm = c.checkouts.warm('base');
  const ovl = runInOverlay(warm.dir, 'rm a.txt && rm -rf dir && mkdir dir && printf z > dir/z && mkfifo ff && chmod 700 tree');
  if (!ovl) return t.skip('overlay mounts are not available here');
  assert.deepEqual(ovl.opaque, new Set(['dir']));
  const set = readUpperChanges(ovl.upper, warm.dir, ovl.opaque);
  const ops = set.changes.map((ch) => `${ch.op} ${ch.path}`).sort();
  assert.deepEqual(ops, ['delete /a.txt', 'delete /dir', 'delete /ff', 'dir /dir', 'dir /tree', 'file /dir/z']);
  assert.deepEqual(set.skipped.map((s) => s.path), ['/ff']);
});

test('cost: readUpperChanges for 10 changes over a 2k-file lower (printed, not asserted)', (t) => {
  const c = openFixed();
  t.after(() => c.close());
  const src = tempDir('corral-ovl-src-');
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(src, `d${d}`));
    for (let f = 0; f < 100; f++) writeFileSync(join(src, `d${d}`, `f${f}`), `content ${d}/${f}\n`);
  }
  c.transfer.importDir('base', src, '/big');
  const warm = c.checkouts.warm('base');
  const ovl = runInOverlay(warm.dir, 'for i in 0 1 2 3 4 5 6 7 8 9; do echo changed >> big/d$i/f$i; done');
  if (!ovl) return t.skip('overlay mounts are not available here');
  const runs: number[] = [];
  let set: FsChangeSet | undefined;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    set = readUpperChanges(ovl.upper, warm.dir, ovl.opaque);
    runs.push(performance.now() - t0);
  }
  runs.sort((a, b) => a - b);
  assert.equal(set!.changes.filter((ch) => ch.op === 'file').length, 10);
  t.diagnostic(`readUpperChanges, 10 changed files: median ${runs[10]!.toFixed(3)} ms`);
});
