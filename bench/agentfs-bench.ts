// Side by side with AgentFS (agentfs-sdk, a SQLite-backed agent filesystem): write and read 1,000
// files of 1 KiB and 64 KiB into one directory, then list that directory. agentfs-sdk is installed
// on demand into bench/.peers (git-ignored), never as a dependency of Corral.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { distinctBuffers, freshDir, KiB, measure, openCorral, type Bench, type BenchContext } from './lib.ts';

interface AgentFsHandle {
  fs: {
    writeFile(path: string, data: Buffer): Promise<void>;
    readFile(path: string): Promise<Buffer>;
    readdir(path: string): Promise<string[]>;
    readdirPlus(path: string): Promise<unknown[]>;
  };
  close(): Promise<void>;
}

interface AgentFsModule {
  AgentFS: { open(options: { path: string }): Promise<AgentFsHandle> };
}

const PEERS = join(import.meta.dirname, '.peers');

/** Imports agentfs-sdk from bench/.peers, installing it there first when missing. */
async function loadAgentFs(ctx: BenchContext): Promise<{ module: AgentFsModule; version: string }> {
  const manifest = join(PEERS, 'node_modules', 'agentfs-sdk', 'package.json');
  if (!existsSync(manifest)) {
    ctx.progress('installing agentfs-sdk into bench/.peers');
    const r = spawnSync('npm', ['install', '--prefix', PEERS, '--no-audit', '--no-fund', 'agentfs-sdk'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`npm install --prefix bench/.peers agentfs-sdk failed (exit ${r.status ?? r.error?.message})`);
  }
  const require = createRequire(join(PEERS, 'package.json'));
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  return { module: (await import(pathToFileURL(require.resolve('agentfs-sdk')).href)) as AgentFsModule, version };
}

async function run(ctx: BenchContext): Promise<void> {
  const { module, version } = await loadAgentFs(ctx);
  const peer = `AgentFS ${version}`;
  const files = ctx.quick ? 200 : 1000;
  const reps = ctx.quick ? 1 : 3;
  const count = files.toLocaleString('en-US');
  const corral = openCorral(ctx.scratch, 'home');
  corral.vaults.create('a');
  const agent = await module.AgentFS.open({ path: join(freshDir(ctx.scratch, 'agentfs'), 'agentfs.db') });

  for (const size of [KiB, 64 * KiB]) {
    const label = `${count} × ${size / KiB} KiB`;
    ctx.progress(`write and read ${label}`);
    const data = Array.from({ length: reps }, (_, rep) => distinctBuffers(files, size, rep * 100 + size));
    const path = (rep: number, i: number) => `/r${rep}-${size}/f${i}.bin`;
    const corralWrite = await measure(reps, (rep) => {
      for (let i = 0; i < files; i++) corral.files.write('a', path(rep, i), data[rep]![i]!);
    });
    const agentWrite = await measure(reps, async (rep) => {
      for (let i = 0; i < files; i++) await agent.fs.writeFile(path(rep, i), Buffer.from(data[rep]![i]!));
    });
    const corralRead = await measure(reps, (rep) => {
      for (let i = 0; i < files; i++) corral.files.cat('a', path(rep, i));
    });
    const agentRead = await measure(reps, async (rep) => {
      for (let i = 0; i < files; i++) await agent.fs.readFile(path(rep, i));
    });
    const note = `${reps} rounds, each into a new directory (the directory grows to ${count} entries); one commit per Corral write`;
    ctx.add({ name: `write ${label}`, corral: corralWrite, baseline: { label: peer, value: agentWrite }, note });
    ctx.add({ name: `read ${label}`, corral: corralRead, baseline: { label: peer, value: agentRead } });
  }

  ctx.progress(`list a directory of ${count} entries`);
  const dir = `/r0-${KiB}`;
  const runs = ctx.quick ? 5 : 20;
  const corralLs = await measure(runs, () => {
    if (corral.files.ls('a', dir).length !== files) throw new Error('Corral listed the wrong number of entries');
  }, { warmup: 2 });
  const agentLs = await measure(runs, async () => {
    if ((await agent.fs.readdirPlus(dir)).length !== files) throw new Error('AgentFS listed the wrong number of entries');
  }, { warmup: 2 });
  const agentNames = await measure(runs, () => agent.fs.readdir(dir), { warmup: 2 });
  ctx.add({ name: `ls ${count} entries`, corral: corralLs, baseline: { label: `${peer} readdirPlus`, value: agentLs }, note: `both return names with size, mode, mtime; AgentFS readdir (names only): ${agentNames.median.toFixed(2)} ms` });

  await agent.close();
  corral.close();
}

export const agentfsBench: Bench = { name: 'agentfs', title: 'Side by side with agentfs-sdk', run };
