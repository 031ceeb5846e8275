// What every bench shares: one timing helper (median of repeated runs), result rows with their
// baseline, ratio and target, the table printer, machine facts and scratch space.
import { mkdirSync, mkdtempSync, existsSync, rmSync } from 'node:fs';
import { cpus, release, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Corral } from '../src/services/corral.ts';
import type { Caller } from '../src/store/corral-store.ts';

export const benchCaller: Caller = { actor: 'bench', origin: 'api' };

export interface Stats {
  /** Milliseconds. */
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface MeasureOptions {
  /** Untimed runs first (warm caches, JIT). */
  warmup?: number;
  /** Untimed work before each run (fresh directories, new instances). */
  setup?: (i: number) => unknown;
  /** Untimed work after each run. */
  teardown?: (i: number) => unknown;
}

/**
 * Times `fn` `runs` times and returns the median in milliseconds. Synchronous functions are not
 * awaited, so microsecond operations are not inflated by a promise tick.
 */
export async function measure(runs: number, fn: (i: number) => unknown, options: MeasureOptions = {}): Promise<Stats> {
  const warmup = options.warmup ?? 0;
  const samples: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const s = options.setup?.(i);
    if (s instanceof Promise) await s;
    const t0 = performance.now();
    const r = fn(i);
    if (r instanceof Promise) await r;
    const elapsed = performance.now() - t0;
    const t = options.teardown?.(i);
    if (t instanceof Promise) await t;
    if (i >= warmup) samples.push(elapsed);
  }
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), runs };
}

export type Unit = 'ms' | 'ops/s' | 'KiB' | 'MiB/s';

export interface Figure {
  label: string;
  value: number;
}

export interface Row {
  bench: string;
  name: string;
  unit: Unit;
  /** Corral's median; null when the operation is not available. */
  corral: number | null;
  runs: number;
  /** Fastest and slowest of Corral's runs (JSON only: how noisy the figure was). */
  range?: [number, number];
  /** Measured in the same run: a raw floor, a peer tool or the same operation at a smaller size. */
  baseline?: Figure;
  /** Corral ÷ baseline (for ms and KiB lower is better, for ops/s and MiB/s higher is better). */
  ratio?: number;
  /** A figure someone else published, not measured here. */
  anchor?: Figure;
  target?: string;
  pass?: boolean;
  /** A machine figure (no Corral code runs): shown for scale, not judged. */
  reference?: boolean;
  note?: string;
}

export interface RowInput {
  name: string;
  unit?: Unit;
  corral: Stats | number | null;
  runs?: number;
  baseline?: { label: string; value: Stats | number };
  anchor?: Figure;
  /** A target such as '≤ 10 ms' and whether the row meets it. */
  target?: { text: string; pass: (row: Row) => boolean };
  reference?: boolean;
  note?: string;
}

export interface BenchContext {
  quick: boolean;
  /** A fresh directory of this bench's own under the scratch root. */
  scratch: string;
  add(row: RowInput): Row;
  progress(message: string): void;
}

export interface Bench {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<void>;
}

const valueOf = (v: Stats | number): number => (typeof v === 'number' ? v : v.median);

export function makeRow(bench: string, input: RowInput): Row {
  const row: Row = {
    bench,
    name: input.name,
    unit: input.unit ?? 'ms',
    corral: input.corral === null ? null : valueOf(input.corral),
    runs: input.runs ?? (input.corral !== null && typeof input.corral === 'object' ? input.corral.runs : 1),
  };
  if (input.corral !== null && typeof input.corral === 'object') row.range = [input.corral.min, input.corral.max];
  if (input.baseline) {
    row.baseline = { label: input.baseline.label, value: valueOf(input.baseline.value) };
    if (row.corral !== null) row.ratio = row.corral / row.baseline.value;
  }
  if (input.anchor) row.anchor = input.anchor;
  if (input.target) {
    row.target = input.target.text;
    if (row.corral !== null) row.pass = input.target.pass(row);
  }
  if (input.reference) row.reference = true;
  if (input.note) row.note = input.note;
  return row;
}

/** Targets: a limit on Corral's figure, or on its ratio to the baseline. */
export const atMost = (ms: number, text = `≤ ${formatValue(ms, 'ms')}`) => ({ text, pass: (r: Row) => r.corral !== null && r.corral <= ms });
export const atLeast = (opsPerSecond: number, text: string) => ({ text, pass: (r: Row) => r.corral !== null && r.corral >= opsPerSecond });
export const ratioAtMost = (limit: number, text = `≤ ${limit}× baseline`) => ({ text, pass: (r: Row) => r.ratio !== undefined && r.ratio <= limit });
export const both = (a: { text: string; pass: (r: Row) => boolean }, b: { text: string; pass: (r: Row) => boolean }) => ({ text: `${a.text}, ${b.text}`, pass: (r: Row) => a.pass(r) && b.pass(r) });

// ---- formatting ------------------------------------------------------------------------------

export function formatValue(v: number | null | undefined, unit: Unit): string {
  if (v === null || v === undefined || Number.isNaN(v)) return 'n/a';
  if (unit === 'ops/s') return `${Math.round(v).toLocaleString('en-US')}/s`;
  if (unit === 'KiB') return `${v.toPrecision(3)} KiB`;
  if (unit === 'MiB/s') return `${v.toPrecision(3)} MiB/s`;
  if (v < 1) return `${(v * 1000).toPrecision(3)} µs`;
  if (v < 1000) return `${v.toPrecision(3)} ms`;
  return `${(v / 1000).toPrecision(3)} s`;
}

function formatRatio(r: number | undefined): string {
  if (r === undefined) return '';
  return r >= 10 ? `${r.toFixed(0)}×` : `${r.toFixed(2)}×`;
}

const HEADER = ['bench', 'name', 'corral', 'baseline (same run)', 'ratio', 'published anchor', 'target', 'result'];

function cells(r: Row): string[] {
  return [
    r.bench,
    r.name,
    r.reference ? `(${formatValue(r.corral, r.unit)})` : formatValue(r.corral, r.unit),
    r.baseline ? `${formatValue(r.baseline.value, r.unit)} ${r.baseline.label}` : '',
    formatRatio(r.ratio),
    r.anchor ? `${formatValue(r.anchor.value, r.unit)} ${r.anchor.label}` : '',
    r.target ?? '',
    r.reference ? 'reference' : r.corral === null ? 'n/a' : r.pass === undefined ? '' : r.pass ? 'pass' : 'FAIL',
  ];
}

export function renderTable(rows: readonly Row[]): string {
  const header = HEADER;
  const body = rows.map(cells);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** The same table as Markdown, for docs/benchmarks.md. */
export function renderMarkdown(rows: readonly Row[]): string {
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const line = (c: string[]) => `| ${c.map(esc).join(' | ')} |`;
  return [line(HEADER), line(HEADER.map(() => '---')), ...rows.map((r) => line(cells(r)))].join('\n');
}

// ---- machine and scratch ---------------------------------------------------------------------

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  sqlite: string;
  scratch: string;
}

export function machine(scratch: string): Machine {
  const db = new DatabaseSync(':memory:');
  const sqlite = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  db.close();
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    sqlite,
    scratch,
  };
}

/** Scratch root: $BENCH_TMP, else /dev/shm (tmpfs, see ARCHITECTURE §5), else the OS temp dir. */
export function makeScratchRoot(): string {
  const base = process.env.BENCH_TMP || (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, 'corral-bench-'));
}

export function freshDir(parent: string, name: string): string {
  const dir = join(parent, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** An in-process Corral over a fresh home under `parent`. */
export function openCorral(parent: string, name: string): Corral {
  return new Corral({ home: freshDir(parent, name), caller: benchCaller });
}

// ---- deterministic data ----------------------------------------------------------------------

/** A small seeded PRNG (mulberry32): the same data on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` distinct buffers of `size` bytes (a shared random body with the index stamped in front). */
export function distinctBuffers(n: number, size: number, seed = 1): Uint8Array[] {
  const r = rng(seed);
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = 32 + Math.floor(r() * 95);
  return Array.from({ length: n }, (_, i) => {
    const b = new Uint8Array(body);
    new DataView(b.buffer).setUint32(0, i + seed * 1_000_003);
    return b;
  });
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** A vault of `files` small files in directories of 100, in one commit. */
export function fillVault(corral: Corral, vault: string, files: number): void {
  const enc = new TextEncoder();
  corral.vaults.create(vault);
  corral.store.mutate(benchCaller, vault, { op: 'bench.fill', target: '/', message: `fill ${files}` }, (editor) => {
    for (let n = 0; n < files; n++) {
      const dir = `/d${Math.floor(n / 100)}`;
      if (n % 100 === 0) editor.mkdirs(dir);
      const blob = corral.store.objects.putBlob(enc.encode(`file ${n}\n`));
      editor.set(`${dir}/f${n % 100}.txt`, { kind: 'file', mode: 0o644, hash: blob.hash, size: blob.size, mtime: editor.mtime });
    }
  });
}
