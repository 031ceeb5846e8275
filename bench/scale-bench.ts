// Checkpoint save, fork, restore and diff on vaults of 1,000, 10,000 and 100,000 files. These are
// pointer writes (diff: a walk of the changed subtrees only), so they should be flat across sizes:
// the baseline of each row is the same operation on the 1,000-file vault, measured in the same run.
import { Corral } from '../src/services/corral.ts';
import { join } from 'node:path';
import { atMost, benchCaller, both, measure, openCorral, ratioAtMost, type Bench, type BenchContext, type Stats } from './lib.ts';

const FILES_PER_DIR = 100;
const CHANGED = 10;

/** Fills a vault with `files` small distinct files as /d<j>/f<i>.txt in one commit. */
function fill(corral: Corral, vault: string, files: number): void {
  const enc = new TextEncoder();
  corral.vaults.create(vault);
  corral.store.mutate(benchCaller, vault, { op: 'bench.fill', target: '/', message: `fill ${files} files` }, (editor) => {
    for (let n = 0; n < files; n++) {
      const dir = `/d${Math.floor(n / FILES_PER_DIR)}`;
      if (n % FILES_PER_DIR === 0) editor.mkdirs(dir);
      const blob = corral.store.objects.putBlob(enc.encode(`${vault} file ${n}\n`));
      editor.set(`${dir}/f${n % FILES_PER_DIR}.txt`, { kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: editor.mtime });
    }
  });
  if (corral.vaults.info(vault).files !== files) throw new Error(`${vault} holds the wrong number of files`);
}

/** Checkpoints `a` and `b` that differ in CHANGED files spread over CHANGED directories. */
function prepareDiff(corral: Corral, vault: string, files: number): void {
  corral.checkpoints.save(vault, 'diff-a');
  const dirs = files / FILES_PER_DIR;
  corral.store.mutate(benchCaller, vault, { op: 'bench.change', target: '/', message: `change ${CHANGED} files` }, (editor) => {
    for (let k = 0; k < CHANGED; k++) {
      const path = `/d${Math.floor((k * dirs) / CHANGED)}/f${k}.txt`;
      const blob = corral.store.objects.putBlob(new TextEncoder().encode(`changed ${k}\n`));
      editor.set(path, { kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: editor.mtime });
    }
  });
  corral.checkpoints.save(vault, 'diff-b');
}

interface SizeResult {
  save: Stats;
  fork: Stats;
  restore: Stats;
  diffWarm: Stats;
  diffCold: Stats;
}

async function measureSize(ctx: BenchContext, files: number, runs: number): Promise<SizeResult> {
  let corral = openCorral(ctx.scratch, `home-${files}`);
  const home = join(ctx.scratch, `home-${files}`);
  const vault = `v${files}`;
  ctx.progress(`building a ${files.toLocaleString('en-US')}-file vault`);
  const t0 = performance.now();
  fill(corral, vault, files);
  ctx.progress(`  built in ${((performance.now() - t0) / 1000).toFixed(1)} s; timing save, fork, restore, diff`);
  const save = await measure(runs, (i) => corral.checkpoints.save(vault, `cp-${i}`), { warmup: 5 });
  const fork = await measure(runs, (i) => corral.vaults.fork(vault, `${vault}-fork-${i}`), { warmup: 5 });
  const restore = await measure(runs, (i) => corral.checkpoints.restore(vault, `cp-${i}`), { warmup: 5 });
  prepareDiff(corral, vault, files);
  const check = () => {
    const d = corral.history.diff(vault, 'diff-a', 'diff-b');
    if (d.changes.length !== CHANGED) throw new Error(`diff found ${d.changes.length} changes, expected ${CHANGED}`);
  };
  const diffWarm = await measure(runs, check, { warmup: 5 });
  // Cold: a fresh Corral per run (as each CLI call is), so no tree is cached; opening is not timed.
  corral.close();
  const diffCold = await measure(runs, check, {
    setup: () => (corral = new Corral({ home, caller: benchCaller })),
    teardown: () => corral.close(),
  });
  return { save, fork, restore, diffWarm, diffCold };
}

async function run(ctx: BenchContext): Promise<void> {
  const sizes = ctx.quick ? [1000, 10_000] : [1000, 10_000, 100_000];
  const runs = ctx.quick ? 5 : 20;
  const results = new Map<number, SizeResult>();
  for (const files of sizes) results.set(files, await measureSize(ctx, files, runs));
  const small = results.get(sizes[0]!)!;
  const largest = sizes[sizes.length - 1]!;
  // Pointer writes must also be flat: the largest vault within 2× of the smallest. A diff reads the
  // directories on the changed paths, so only its absolute limit applies.
  const ops: [keyof SizeResult, string, number, boolean][] = [
    ['save', 'checkpoint save', 10, true],
    ['fork', 'vault fork', 10, true],
    ['restore', 'checkpoint restore', 10, true],
    ['diffWarm', `diff, ${CHANGED} files changed, warm`, 20, false],
    ['diffCold', `diff, ${CHANGED} files changed, cold`, 20, false],
  ];
  for (const [key, label, limit, mustBeFlat] of ops)
    for (const files of sizes) {
      const r = results.get(files)!;
      const flat = mustBeFlat && files === largest && files !== sizes[0];
      ctx.add({
        name: `${label} @ ${files.toLocaleString('en-US')} files`,
        corral: r[key],
        ...(files !== sizes[0] ? { baseline: { label: `@ ${sizes[0]!.toLocaleString('en-US')} files`, value: small[key] } } : {}),
        target: flat ? both(atMost(limit), ratioAtMost(2, 'flat (≤ 2×)')) : atMost(limit),
      });
    }
}

export const scaleBench: Bench = { name: 'scale', title: 'Checkpoint, fork, restore and diff at 1k / 10k / 100k files', run };
