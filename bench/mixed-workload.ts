// Mixed workload: 8 processes, each with its own in-process Corral on one home (one SQLite file),
// running write 30 / read 35 / list 15 / search 10 / delete 5 / copy 3 / move 2 % for a fixed time.
// Run twice: one vault per process, then all 8 in one shared vault (each in its own directory).
// The machine's baseline is the spawn floor: Node spawning /bin/true, awaited, in a loop.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { Corral } from '../src/services/corral.ts';
import { atLeast, benchCaller, distinctBuffers, formatValue, freshDir, measure, median, type Bench, type BenchContext } from './lib.ts';
import { run as spawnAndWait, timeCommand } from './time-command.ts';

export interface WorkerStart {
  type: 'start';
  home: string;
  vault: string;
  worker: number;
  seconds: number;
  /** Files already in /w<k>/d<j>/s<i>.txt, written by the parent. */
  seedDirs: number;
  seedFiles: number;
}

export interface WorkerDone {
  type: 'done';
  worker: number;
  ops: number;
  elapsedMs: number;
  byOp: Record<string, number>;
  /** Milliseconds each completed operation took, by kind. */
  latency: Record<string, number[]>;
  errors: Record<string, number>;
}

/** The mix, in percent: write 30, read 35, list 15, search 10, delete 5, copy 3, move 2. */
export const MIX: [string, number][] = [
  ['write', 30],
  ['read', 35],
  ['list', 15],
  ['search', 10],
  ['delete', 5],
  ['copy', 3],
  ['move', 2],
];

const WORKERS = 8;
const SEED_DIRS = 5;
const SEED_FILES = 10;
/** agentvfs's published mixed-workload throughput. */
const AGENTVFS_OPS = 9960;

/** Creates the vaults and each worker's seed files, one commit per vault. */
function seed(home: string, vaults: string[]): void {
  const corral = new Corral({ home, caller: benchCaller });
  for (const v of new Set(vaults)) corral.vaults.create(v);
  const data = distinctBuffers(WORKERS * SEED_DIRS * SEED_FILES, 2048, 3);
  let n = 0;
  vaults.forEach((vault, k) => {
    corral.store.mutate(benchCaller, vault, { op: 'bench.seed', target: `/w${k}`, message: 'seed' }, (editor) => {
      for (let j = 0; j < SEED_DIRS; j++)
        for (let i = 0; i < SEED_FILES; i++) {
          const path = `/w${k}/d${j}/s${i}.txt`;
          editor.mkdirs(`/w${k}/d${j}`);
          const blob = corral.store.objects.putBlob(data[n++]!);
          editor.set(path, { kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: editor.mtime });
        }
    });
  });
  corral.close();
}

interface RoundResult {
  opsPerSecond: number;
  ops: number;
  errors: Record<string, number>;
  byOp: Record<string, number>;
  /** Median milliseconds per operation kind, over all workers. */
  latency: Record<string, number>;
}

/** One timed round: start the workers, wait until all have opened their Corral, then say go. */
async function round(home: string, vaults: string[], seconds: number): Promise<RoundResult> {
  seed(home, vaults);
  const children = vaults.map((vault, worker) => {
    const child = fork(join(import.meta.dirname, 'mixed-worker.ts'), [], { execArgv: ['--disable-warning=ExperimentalWarning'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const ready = new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`mixed worker ${worker} exited with ${code} before it was ready`)));
    });
    const done = new Promise<WorkerDone>((resolve, reject) => {
      child.on('message', (m: WorkerDone | { type: 'ready' }) => m.type === 'done' && resolve(m));
      child.once('exit', (code) => reject(new Error(`mixed worker ${worker} exited with ${code} before it reported`)));
    });
    // Awaited below; until then a crash must not count as an unhandled rejection.
    done.catch(() => undefined);
    const start: WorkerStart = { type: 'start', home, vault, worker, seconds, seedDirs: SEED_DIRS, seedFiles: SEED_FILES };
    child.send(start);
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.send({ type: 'go' });
  const results = await Promise.all(children.map((c) => c.done));
  const sum = (pick: (r: WorkerDone) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(pick(r))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const latency: Record<string, number> = {};
  for (const [name] of MIX) latency[name] = median(results.flatMap((r) => r.latency[name] ?? []));
  const ops = results.reduce((a, r) => a + r.ops, 0);
  const elapsed = Math.max(...results.map((r) => r.elapsedMs));
  return { opsPerSecond: (ops / elapsed) * 1000, ops, errors: sum((r) => r.errors), byOp: sum((r) => r.byOp), latency };
}

function describe(rounds: RoundResult[]): string {
  const r = rounds[0]!;
  const errors = Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const mix = MIX.map(([k]) => `${k} ${Math.round(((r.byOp[k] ?? 0) / r.ops) * 100)}%`).join(' ');
  const latency = MIX.map(([k]) => `${k} ${formatValue(r.latency[k], 'ms')}`).join(', ');
  return `${rounds.length} rounds; round 1: ${r.ops} ops (${mix}), median latency per op: ${latency}; errors: ${errors}`;
}

async function run(ctx: BenchContext): Promise<void> {
  ctx.progress('spawn floor');
  const runs = ctx.quick ? 20 : 200;
  const spawnFloor = timeCommand(runs, '/bin/true', [], 5);
  const spawnPerSecond = 1000 / spawnFloor.median;
  ctx.add({ name: 'spawn floor: spawn(/bin/true), awaited', reference: true, corral: spawnFloor, note: 'the machine baseline: Node child_process.spawn of /bin/true, one at a time, from a fresh small Node process' });
  const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
  const here = await measure(runs, () => spawnAndWait('/bin/true'), { warmup: 5 });
  ctx.add({ name: `same, from the bench process (RSS ${rss} MiB)`, reference: true, corral: here, note: 'spawning from Node costs more the more memory the parent holds (libuv forks): spawn execs from a small process' });

  const seconds = ctx.quick ? 2 : 8;
  const rounds = ctx.quick ? 1 : 3;
  const modes = [
    { name: 'one vault each', vaults: Array.from({ length: WORKERS }, (_, k) => `mixed-${k}`) },
    { name: 'one shared vault', vaults: Array.from({ length: WORKERS }, () => 'mixed') },
  ];
  for (const mode of modes) {
    const results: RoundResult[] = [];
    for (let i = 0; i < rounds; i++) {
      ctx.progress(`${WORKERS} processes, ${mode.name}, round ${i + 1}/${rounds} (${seconds} s)`);
      results.push(await round(freshDir(ctx.scratch, `home-${i}`), mode.vaults, seconds));
    }
    ctx.add({
      name: `mixed, ${WORKERS} processes, ${mode.name}`,
      unit: 'ops/s',
      corral: median(results.map((r) => r.opsPerSecond)),
      runs: rounds,
      baseline: { label: 'serial spawn(/bin/true)', value: spawnPerSecond },
      anchor: { label: 'agentvfs', value: AGENTVFS_OPS },
      target: atLeast(AGENTVFS_OPS, '≥ 9,960/s (agentvfs)'),
      note: describe(results),
    });
  }
}

export const mixedBench: Bench = { name: 'mixed', title: `Mixed workload, ${WORKERS} concurrent processes on one home`, run };
