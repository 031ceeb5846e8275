// The execution boundary (exec issue §7): each figure against its baseline measured in the same run.
//   host exec of /bin/true            vs Node's own child_process.spawn of /bin/true
//   namespace exec of /bin/true       vs raw bwrap with the same isolation flags (and seccomp)
//   whole pipeline, 10,000-file vault vs the same raw bwrap figure (echo hi; and changing 10 files)
//   change summary of 10 changes      at 1k / 10k / 100k files (flat)
//   sandbox-runtime's srt (echo hi)   vs corral exec as a CLI process, both end to end
//   8 concurrent execs                vs 8 concurrent raw bwrap spawns (throughput)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Corral } from '../src/services/corral.ts';
import { HostBackend } from '../src/runtime/host-backend.ts';
import { NamespaceBackend } from '../src/runtime/namespace-backend.ts';
import { buildBwrapArgs } from '../src/runtime/bwrap-args.ts';
import { buildSeccompFilter } from '../src/runtime/seccomp-filter.ts';
import type { ExecSpec, Sandbox } from '../src/runtime/backend.ts';
import { readUpperChanges } from '../src/runtime/overlay-changes.ts';
import { atMost, benchCaller, both, fillVault as fill, freshDir, measure, ratioAtMost, type Bench, type BenchContext } from './lib.ts';

const ROOT = resolve(import.meta.dirname, '..');
const PEERS = join(import.meta.dirname, '.peers');

function waitClose(child: ReturnType<typeof spawn>): Promise<number | null> {
  return new Promise((r, j) => {
    child.on('error', j);
    child.on('close', (code) => r(code));
  });
}

function nodeSpawnTrue(): Promise<number | null> {
  return waitClose(spawn('/bin/true', [], { stdio: ['pipe', 'pipe', 'pipe'] }));
}

const seccomp = buildSeccompFilter();

/** Raw bwrap with the flags the namespace backend uses (and its seccomp program on fd 4). */
function rawBwrap(workspace: string, argv: string[]): Promise<number | null> {
  const args = buildBwrapArgs({ workspace, readonly: false, cwd: '/workspace', argv, env: { PATH: '/usr/bin:/bin' }, network: false, tmpSizeBytes: 64 << 20, seccompFd: 4 });
  const child = spawn('bwrap', args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'] });
  (child.stdio[4] as NodeJS.WritableStream).end(seccomp);
  return waitClose(child);
}

function execSpec(argv: string[]): ExecSpec {
  return { argv, cwd: '/', env: { PATH: '/usr/bin:/bin', HOME: '/workspace', SHLVL: '1' }, timeoutMs: 30_000, graceMs: 500, outputCap: 1 << 20, limits: {} };
}

async function checkExit(p: Promise<{ exitCode: number | null }>): Promise<void> {
  const r = await p;
  if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}`);
}


async function concurrent(n: number, rounds: number, one: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) await Promise.all(Array.from({ length: n }, one));
  return (n * rounds * 1000) / (performance.now() - t0);
}

function installSrt(ctx: BenchContext): string | null {
  const bin = join(PEERS, 'node_modules', '.bin', 'srt');
  if (!existsSync(bin)) {
    ctx.progress('installing @anthropic-ai/sandbox-runtime into bench/.peers');
    const r = spawnSync('npm', ['install', '--prefix', PEERS, '--no-audit', '--no-fund', '@anthropic-ai/sandbox-runtime'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) return null;
  }
  return bin;
}

function runCli(cmd: string, args: string[], env: Record<string, string>, cwd: string): Promise<number | null> {
  return waitClose(spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function run(ctx: BenchContext): Promise<void> {
  const runs = ctx.quick ? 15 : 60;
  const ws = freshDir(ctx.scratch, 'ws');
  writeFileSync(join(ws, 'file'), 'x');

  // 1. host backend vs Node's spawn.
  ctx.progress('host exec of /bin/true vs child_process.spawn');
  const host = await new HostBackend().create({ checkout: ws, readonly: false, network: false, limits: {}, bestEffort: false });
  const spawnTrue = await measure(runs, nodeSpawnTrue, { warmup: 10 });
  const hostTrue = await measure(runs, () => checkExit(host.exec(execSpec(['/bin/true']))), { warmup: 10 });
  ctx.add({ name: 'host exec /bin/true', corral: hostTrue, baseline: { label: 'node spawn /bin/true', value: spawnTrue }, target: ratioAtMost(1.3) });

  // 2. namespace backend vs raw bwrap with the same flags.
  ctx.progress('namespace exec of /bin/true vs raw bwrap');
  const ns = new NamespaceBackend();
  if (!(await ns.probe()).available) {
    ctx.add({ name: 'namespace exec /bin/true', corral: null, note: (await ns.probe()).reason ?? 'namespace backend unavailable' });
    return;
  }
  const bwrapTrue = await measure(runs, () => rawBwrap(ws, ['/bin/true']), { warmup: 10 });
  const nsRo: Sandbox = await ns.create({ checkout: ws, readonly: true, network: false, limits: {}, bestEffort: false });
  const nsRw: Sandbox = await ns.create({ checkout: ws, readonly: false, network: false, limits: {}, bestEffort: false });
  const nsTrue = await measure(runs, () => checkExit(nsRo.exec(execSpec(['/bin/true']))), { warmup: 10 });
  const nsOverlay = await measure(runs, async () => {
    const r = await nsRw.exec(execSpec(['/bin/true']));
    r.upper?.release();
    if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}`);
  }, { warmup: 10 });
  ctx.add({ name: 'namespace exec /bin/true (read-only workspace)', corral: nsTrue, baseline: { label: 'raw bwrap, same flags + seccomp', value: bwrapTrue }, target: ratioAtMost(1.3) });
  ctx.add({ name: 'namespace exec /bin/true (overlay workspace)', corral: nsOverlay, baseline: { label: 'raw bwrap, same flags + seccomp', value: bwrapTrue }, note: 'adds the user+mount namespace and overlay mount of a writable exec' });

  // 3. the whole pipeline on a 10,000-file vault.
  const files = ctx.quick ? 2000 : 10_000;
  ctx.progress(`whole pipeline on a ${files.toLocaleString('en-US')}-file vault`);
  const home = freshDir(ctx.scratch, 'home');
  const corral = new Corral({ home, caller: benchCaller });
  fill(corral, 'big', files);
  corral.checkouts.warm('big');
  const pipeline = (request: Parameters<Corral['exec']['run']>[0]) => async () => {
    const r = await corral.exec.run(request);
    if (r.status !== 'completed' || r.exitCode !== 0) throw new Error(`pipeline: ${r.status} ${r.exitCode} ${r.error?.message ?? r.stderr}`);
  };
  const echo = await measure(runs, pipeline({ vault: 'big', shell: 'echo hi', backend: 'namespace', policy: 'permissive' }), { warmup: 5 });
  ctx.add({ name: `pipeline: exec --shell 'echo hi' @ ${files.toLocaleString('en-US')} files`, corral: echo, baseline: { label: 'raw bwrap /bin/true', value: bwrapTrue }, target: ratioAtMost(2) });
  let k = 0;
  const ten = await measure(runs, () => pipeline({ vault: 'big', shell: `for i in 0 1 2 3 4 5 6 7 8 9; do echo ${k++} > d$i/f1.txt; done`, backend: 'namespace', policy: 'permissive' })(), { warmup: 5 });
  ctx.add({ name: `pipeline: a command changing 10 files @ ${files.toLocaleString('en-US')} files`, corral: ten, baseline: { label: 'raw bwrap /bin/true', value: bwrapTrue }, target: ratioAtMost(2.5) });

  // 4. change summary of 10 changes: read the upper dir, commit, sync the warm checkout.
  const sizes = ctx.quick ? [1000, 10_000] : [1000, 10_000, 100_000];
  const summaries = new Map<number, Awaited<ReturnType<typeof measure>>>();
  for (const n of sizes) {
    ctx.progress(`change summary of 10 changes @ ${n.toLocaleString('en-US')} files`);
    const c = new Corral({ home: freshDir(ctx.scratch, `sum-${n}`), caller: benchCaller });
    fill(c, 'v', n);
    const warm = c.checkouts.warm('v');
    let round = 0;
    const summary = await measure(ctx.quick ? 5 : 15, () => {
      const w = c.checkouts.warm('v');
      const upper = join(ctx.scratch, `upper-${n}-${round}`);
      for (let i = 0; i < 10; i++) {
        mkdirSync(join(upper, `d${Math.floor((i * n) / 1000)}`), { recursive: true });
        writeFileSync(join(upper, `d${Math.floor((i * n) / 1000)}`, `f${i}.txt`), `round ${round} change ${i}\n`);
      }
      round++;
      const set = readUpperChanges(upper, w.dir, new Set());
      const { commit, changes } = c.checkouts.commitChanges('v', set, { message: 'bench', op: 'exec.commit', origin: 'exec' });
      if (!commit || changes.length !== 10) throw new Error(`expected 10 changes, got ${changes.length}`);
      c.checkouts.syncTo(warm.id, commit.id, { scan: false });
    }, { warmup: 2 });
    summaries.set(n, summary);
    c.close();
  }
  const small = summaries.get(sizes[0]!)!;
  for (const n of sizes)
    ctx.add({
      name: `change summary, 10 changes @ ${n.toLocaleString('en-US')} files`,
      corral: summaries.get(n)!,
      ...(n !== sizes[0] ? { baseline: { label: `@ ${sizes[0]!.toLocaleString('en-US')} files`, value: small } } : {}),
      target: n === sizes.at(-1) && n !== sizes[0] ? both(atMost(20), ratioAtMost(2, 'flat (≤ 2×)')) : atMost(20),
    });

  // 5. sandbox-runtime's srt vs corral exec, both as CLI processes running `echo hi`, network off.
  const srt = installSrt(ctx);
  const cliRuns = ctx.quick ? 5 : 20;
  const cli = join(ROOT, 'bin', 'corral');
  const cliEnv = { CORRAL_HOME: home, CORRAL_VAULT: 'big', NO_COLOR: '1' };
  const corralCli = await measure(cliRuns, async () => {
    const code = await runCli(cli, ['exec', '--backend', 'namespace', '--policy', 'permissive', '--shell', 'echo hi'], cliEnv, ws);
    if (code !== 0) throw new Error(`corral exec exit ${code}`);
  }, { warmup: 2 });
  if (srt) {
    const srtSettings = join(ctx.scratch, 'srt-settings.json');
    writeFileSync(srtSettings, JSON.stringify({ network: { allowedDomains: [], deniedDomains: [] }, filesystem: { denyRead: [], allowWrite: [ws], denyWrite: [] } }));
    const srtRun = await measure(cliRuns, async () => {
      const code = await runCli(process.execPath, [srt, '-s', srtSettings, '-c', 'echo hi'], {}, ws);
      if (code !== 0) throw new Error(`srt exit ${code}`);
    }, { warmup: 2 });
    const version = JSON.parse(readFileSync(join(PEERS, 'node_modules', '@anthropic-ai', 'sandbox-runtime', 'package.json'), 'utf8')).version as string;
    ctx.add({ name: "corral exec --shell 'echo hi' (CLI process, namespace)", corral: corralCli, baseline: { label: `srt ${version} -c 'echo hi'`, value: srtRun }, target: ratioAtMost(1, 'faster than srt (< 1×)') });
  } else ctx.add({ name: "corral exec --shell 'echo hi' (CLI process)", corral: corralCli, note: 'sandbox-runtime could not be installed: no comparison' });

  // 6. 8 concurrent execs on 2 cores vs 8 concurrent raw bwrap spawns.
  ctx.progress('8 concurrent execs vs 8 concurrent raw bwrap');
  const rounds = ctx.quick ? 5 : 20;
  const rawRate = await concurrent(8, rounds, () => rawBwrap(ws, ['/bin/true']));
  const nsRate = await concurrent(8, rounds, async () => {
    const r = await nsRw.exec(execSpec(['/bin/true']));
    r.upper?.release();
  });
  ctx.add({ name: '8 concurrent namespace execs (throughput)', unit: 'ops/s', corral: nsRate, baseline: { label: '8 concurrent raw bwrap', value: rawRate }, target: { text: '≥ 80% of raw bwrap', pass: (r) => r.ratio !== undefined && r.ratio >= 0.8 } });
  const pipeRate = await concurrent(8, rounds, pipeline({ vault: 'big', shell: 'echo hi', backend: 'namespace', policy: 'permissive' }));
  ctx.add({ name: '8 concurrent pipeline execs, one vault (throughput)', unit: 'ops/s', corral: pipeRate, baseline: { label: '8 concurrent raw bwrap', value: rawRate }, note: 'policy, overlay, change summary and audit included' });
  await nsRo.destroy();
  await nsRw.destroy();
  await host.destroy();
  corral.close();
}

export const execBench: Bench = { name: 'exec', title: 'The execution boundary: backends, the whole pipeline, change summaries, srt, concurrency', run };
