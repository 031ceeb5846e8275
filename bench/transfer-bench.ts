// Import of a 10,000-file tree shaped like node_modules (many small files in nested packages, a few
// large bundles, identical LICENSE files, .bin symlinks) and export of it back to the host, against `cp -a` of
// the same tree in the same run (spawned from a small process, see time-command.ts). Everything on
// the scratch root (tmpfs by default).
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Corral } from '../src/services/corral.ts';
import { benchCaller, freshDir, measure, ratioAtMost, rng, type Bench, type BenchContext } from './lib.ts';
import { timeCommand } from './time-command.ts';

const LICENSE = 'MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy of this software.\n'.repeat(8);

/** Writes a node_modules-like tree of exactly `count` files (and some symlinks) under `root`. */
function makeTree(root: string, count: number): { bytes: number; links: number } {
  const r = rng(42);
  const words = ['function', 'return', 'const', 'module', 'exports', 'require', 'if', 'else', 'this', 'value', 'options', 'callback', 'null', 'undefined', '=>', '{', '}', ';'];
  const pool = Array.from({ length: 200_000 }, () => words[Math.floor(r() * words.length)]).join(' ');
  let files = 0;
  let bytes = 0;
  let links = 0;
  const put = (path: string, size: number, shared?: string) => {
    if (files >= count) return;
    const header = `// ${path}\n`;
    const start = Math.floor(r() * (pool.length - size));
    const text = shared ?? header + pool.slice(start, start + Math.max(0, size - header.length));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    files++;
    bytes += Buffer.byteLength(text);
  };
  const small = () => 200 + Math.floor(r() * r() * 12_000);
  const packages: string[] = [];
  for (let p = 0; files < count; p++) {
    // Some packages nest inside others, as npm does on version conflicts.
    const parent = packages.length > 0 && r() < 0.2 ? packages[Math.floor(r() * packages.length)]! : root;
    const dir = join(parent, 'node_modules', `pkg-${p}`);
    packages.push(dir);
    put(join(dir, 'package.json'), 300 + Math.floor(r() * 900));
    put(join(dir, 'README.md'), small());
    put(join(dir, 'LICENSE'), 0, LICENSE);
    put(join(dir, 'index.js'), small());
    const libFiles = 3 + Math.floor(r() * 14);
    for (let i = 0; i < libFiles; i++) put(join(dir, 'lib', r() < 0.3 ? `sub${i % 3}` : '', `m${i}.js`), small());
    if (r() < 0.1) put(join(dir, 'dist', 'bundle.js'), 50_000 + Math.floor(r() * 450_000));
    if (parent === root && p % 10 === 0 && files < count) {
      mkdirSync(join(root, 'node_modules', '.bin'), { recursive: true });
      symlinkSync(`../pkg-${p}/index.js`, join(root, 'node_modules', '.bin', `pkg-${p}`));
      links++;
    }
  }
  return { bytes, links };
}

/** Files and symlinks below `dir` (what a vault counts as files). */
function countFiles(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() || e.isSymbolicLink()).length;
}

async function run(ctx: BenchContext): Promise<void> {
  const count = ctx.quick ? 2000 : 10_000;
  const runs = ctx.quick ? 3 : 5;
  const label = `${count.toLocaleString('en-US')} files`;
  ctx.progress(`writing a node_modules-like tree of ${label}`);
  const tree = freshDir(ctx.scratch, 'tree');
  const { bytes, links } = makeTree(tree, count);
  const entries = count + links;
  if (countFiles(tree) !== entries) throw new Error('the generated tree has the wrong number of files');
  const shape = `${label}, ${(bytes / 2 ** 20).toFixed(1)} MiB`;

  ctx.progress('cp -a baseline');
  const copies = freshDir(ctx.scratch, 'copies');
  const cp = timeCommand(runs, 'cp', ['-a', tree, join(copies, 'copy-{i}')]);
  rmSync(copies, { recursive: true, force: true });

  let corral: Corral;
  ctx.progress(`import of ${label}`);
  // A fresh home per run, so no run benefits from blobs an earlier one stored; opening is not timed.
  const home = (i: number) => join(ctx.scratch, `home-${i}`);
  const importStats = await measure(runs, () => corral.transfer.importDir('t', tree, '/'), {
    setup: (i) => {
      corral = new Corral({ home: freshDir(ctx.scratch, `home-${i}`), caller: benchCaller });
      corral.vaults.create('t');
    },
    teardown: (i) => {
      const files = corral.vaults.info('t').files;
      corral.close();
      if (files !== entries) throw new Error(`import stored ${files} files, expected ${entries}`);
      if (i < runs - 1) rmSync(home(i), { recursive: true, force: true });
    },
  });

  ctx.progress(`export of ${label}`);
  corral = new Corral({ home: home(runs - 1), caller: benchCaller });
  const exportTo = join(ctx.scratch, 'export');
  const exportStats = await measure(runs, () => corral.transfer.exportDir('t', '/', exportTo), {
    teardown: () => {
      const files = countFiles(exportTo);
      rmSync(exportTo, { recursive: true, force: true });
      if (files !== entries) throw new Error(`export wrote ${files} files, expected ${entries}`);
    },
  });
  corral.close();

  ctx.add({ name: `import ${shape}`, corral: importStats, baseline: { label: 'cp -a', value: cp }, target: ratioAtMost(3, '≤ 3× cp -a'), note: `transfer.importDir into a fresh home and vault, one commit; the tree also holds ${links} .bin symlinks` });
  ctx.add({ name: `export ${shape}`, corral: exportStats, baseline: { label: 'cp -a', value: cp }, target: ratioAtMost(3, '≤ 3× cp -a'), note: 'transfer.exportDir of the whole vault into a new host directory' });
}

export const transferBench: Bench = { name: 'transfer', title: 'Import and export of a node_modules-like tree against cp -a', run };
