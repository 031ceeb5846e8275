// `make bench`: runs the foundation and exec benchmarks, prints one table and writes
// bench/results/foundation-<timestamp>.json and bench/results/latest.json.
//   BENCH_QUICK=1        small sizes, a smoke run in well under a minute
//   --only store,scale   run only the named benches
//   BENCH_TMP=DIR        scratch root (default /dev/shm)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, makeRow, makeScratchRoot, freshDir, renderMarkdown, renderTable, type Bench, type Row } from './lib.ts';
import { storeBench } from './store-bench.ts';
import { mixedBench } from './mixed-workload.ts';
import { scaleBench } from './scale-bench.ts';
import { transferBench } from './transfer-bench.ts';
import { agentfsBench } from './agentfs-bench.ts';
import { execBench } from './exec-bench.ts';
import { daemonBench } from './daemon-bench.ts';
import { mcpBench } from './mcp-bench.ts';

// exec first: spawning gets slower as this process grows (see docs/benchmarks.md), and its rows time spawns.
const benches: Bench[] = [execBench, daemonBench, mcpBench, storeBench, mixedBench, scaleBench, transferBench, agentfsBench];

const { values } = parseArgs({ options: { only: { type: 'string' } } });
const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((n) => !benches.some((b) => b.name === n)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown bench: ${unknown.join(', ')} (choose from ${benches.map((b) => b.name).join(', ')})`);
  process.exit(2);
}
const quick = process.env.BENCH_QUICK === '1';
const selected = benches.filter((b) => !only || only.includes(b.name));
const scratchRoot = makeScratchRoot();
const info = machine(scratchRoot);
const started = new Date();
const rows: Row[] = [];
const durations: Record<string, number> = {};
let crashed = false;

console.error(`corral bench${quick ? ' (quick)' : ''}: ${info.cpus} cpus (${info.cpuModel}), node ${info.node}, sqlite ${info.sqlite}, scratch ${scratchRoot}`);
try {
  for (const bench of selected) {
    const t0 = performance.now();
    console.error(`\n[${bench.name}] ${bench.title}`);
    try {
      await bench.run({
        quick,
        scratch: freshDir(scratchRoot, bench.name),
        add: (input) => {
          const row = makeRow(bench.name, input);
          rows.push(row);
          return row;
        },
        progress: (message) => console.error(`  ${bench.name}: ${message}`),
      });
    } catch (e) {
      crashed = true;
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      console.error(`  ${bench.name} failed: ${message}`);
      rows.push(makeRow(bench.name, { name: '(bench failed)', corral: null, note: message.split('\n')[0]! }));
    } finally {
      rmSync(join(scratchRoot, bench.name), { recursive: true, force: true });
    }
    durations[bench.name] = Math.round(performance.now() - t0);
  }
} finally {
  rmSync(scratchRoot, { recursive: true, force: true });
}

console.log(`\nmachine: ${info.cpus} cpus (${info.cpuModel}), ${info.memoryGiB} GiB, Linux ${info.kernel}, node ${info.node}, sqlite ${info.sqlite}; scratch on ${info.scratch.replace(/\/corral-bench-.*$/, '')}`);
console.log('medians; ratio = Corral ÷ baseline (times and KiB: lower is better; ops/s and MiB/s: higher is better)\n');
console.log(renderTable(rows));
const notes = rows.filter((r) => r.note);
if (notes.length > 0) {
  console.log('\nnotes:');
  for (const r of notes) console.log(`  ${r.bench} / ${r.name}: ${r.note}`);
}

const results = resolve(import.meta.dirname, 'results');
mkdirSync(results, { recursive: true });
const report = { suite: 'foundation', startedAt: started.toISOString(), quick, only: only ?? null, machine: info, durationsMs: durations, rows };
const file = join(results, `foundation-${started.toISOString().replaceAll(':', '-').replace(/\.\d+Z$/, 'Z')}.json`);
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
writeFileSync(join(results, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
writeFileSync(join(results, 'latest.md'), renderMarkdown(rows) + '\n');
console.log(`\nwrote ${file} (and latest.json, latest.md) in ${(performance.now() / 1000).toFixed(0)} s`);
process.exit(crashed ? 1 : 0);
