// The daemon (issue 4 §10), a real `corral daemon` process driven over its Unix socket and TCP:
//   exec round trip /bin/true, namespace sandbox, collected   vs the in-process pipeline (+2 ms; TCP with a key +3 ms)
//   sandbox create (fork of a 10,000-file vault) + first exec vs raw bwrap /bin/true (≤ 3×)
//   100 sandboxes created at once                            p50, p95, total
//   1,000 idle sandboxes                                     no processes; daemon RSS growth per sandbox (≤ 100 KiB)
//   64 concurrent execs for 60 s                               no errors, no leaks; throughput vs raw bwrap at 64 (≥ 70%)
//   100 MiB of output streamed to an SDK client              MiB/s over the socket (≥ 200), daemon memory bounded
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Corral } from '../src/services/corral.ts';
import { connect as connectSdk } from '../src/sdk/node.ts';
import { buildBwrapArgs } from '../src/runtime/bwrap-args.ts';
import { buildSeccompFilter } from '../src/runtime/seccomp-filter.ts';
import { benchCaller, fillVault as fill, freshDir, measure, median, ratioAtMost, type Bench, type BenchContext, type Row } from './lib.ts';

const CLI = resolve(import.meta.dirname, '..', 'bin', 'corral');
const seccomp = buildSeccompFilter();

function rawBwrap(workspace: string): Promise<void> {
  const args = buildBwrapArgs({ workspace, readonly: false, cwd: '/workspace', argv: ['/bin/true'], env: { PATH: '/usr/bin:/bin' }, network: false, tmpSizeBytes: 64 << 20, seccompFd: 4 });
  const child = spawn('bwrap', args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'] });
  (child.stdio[4] as NodeJS.WritableStream).end(seccomp);
  return new Promise((r, j) => {
    child.on('error', j);
    child.on('close', (code) => (code === 0 ? r() : j(new Error(`bwrap exit ${code}`))));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Client {
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Reads a response body to its end (a GET, or a POST of `body` asking for SSE), counting bytes; resolves with the byte count. */
  drain(path: string, body?: unknown): Promise<number>;
}

function client(target: { socketPath: string } | { port: number; key: string }): Client {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const base = 'socketPath' in target ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port };
  const auth: Record<string, string> = 'key' in target ? { authorization: `Bearer ${target.key}` } : {};
  return {
    call(method, path, body) {
      return new Promise((resolve, reject) => {
        const req = request({ ...base, agent, method, path, headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (b: Buffer) => chunks.push(b));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
          });
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    },
    drain(path, body) {
      return new Promise((resolve, reject) => {
        const req = request({ ...base, agent, method: body === undefined ? 'GET' : 'POST', path, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json', accept: 'text/event-stream' }) } }, (res) => {
          let n = 0;
          res.on('data', (b: Buffer) => (n += b.length));
          res.on('end', () => resolve(n));
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    },
  };
}

async function startDaemon(home: string, port: number): Promise<ChildProcess> {
  const child = spawn(CLI, ['daemon', '--port', String(port)], { env: { ...process.env, CORRAL_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const c = client({ socketPath: join(home, 'corral.sock') });
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`the daemon exited: ${err.slice(-2000)}`);
    try {
      if ((await c.call('GET', '/v1/ping')).status === 200) return child;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the daemon did not answer: ${err.slice(-2000)}`);
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) : NaN;
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;


const plusAtMost = (ms: number) => ({ text: `≤ baseline + ${ms} ms`, pass: (r: Row) => r.corral !== null && r.baseline !== undefined && r.corral <= r.baseline.value + ms });

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** BENCH_ONLY_PART=streaming (comma-separated: roundtrip, create, creates, idle, concurrency, streaming) runs those parts only. */
function partFilter(): (part: string) => boolean {
  const only = process.env.BENCH_ONLY_PART?.split(',').map((s) => s.trim()).filter(Boolean);
  return (part) => !only || only.includes(part);
}

async function run(ctx: BenchContext): Promise<void> {
  const part = partFilter();
  const runs = ctx.quick ? 15 : 50;
  const files = part('create') ? (ctx.quick ? 2000 : 10_000) : 10;
  const home = freshDir(ctx.scratch, 'home');
  const ws = freshDir(ctx.scratch, 'ws');
  writeFileSync(join(ws, 'file'), 'x');
  {
    const seed = new Corral({ home, caller: benchCaller });
    seed.vaults.create('small');
    fill(seed, 'big', files);
    seed.close();
  }
  const setup = new Corral({ home, caller: benchCaller });
  const key = setup.keys.create({ tenant: 'bench', scopes: ['admin'] }).secret;
  setup.store.db.run("UPDATE vaults SET tenant = 'bench' WHERE name IN ('small', 'big')");

  // The in-process baseline: the same pipeline without HTTP, on the same home.
  const inProcess = part('roundtrip')
    ? await (async () => {
        ctx.progress('in-process pipeline /bin/true in a namespace sandbox');
        const local = setup.sandboxes.create({ vault: 'small', backend: 'namespace', policy: 'permissive' });
        return measure(runs, async () => {
          const r = await setup.execs.run(local.id, { argv: ['/bin/true'] });
          if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}: ${r.error?.message}`);
        }, { warmup: 5 });
      })()
    : null;

  const port = await freePort();
  const daemon = await startDaemon(home, port);
  try {
    const unix = client({ socketPath: join(home, 'corral.sock') });
    const tcp = client({ port, key });
    const sandbox = async (c: Client, spec: object) => {
      const r = await c.call('POST', '/v1/sandboxes', spec);
      if (r.status !== 201) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.id as string;
    };
    const execTrue = (c: Client, id: string) => async () => {
      const r = await c.call('POST', `/v1/sandboxes/${id}/exec`, { argv: ['/bin/true'] });
      if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`exec: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    };

    if (inProcess) {
      ctx.progress('exec round trip over the Unix socket and over TCP with a key');
      const sbUnix = await sandbox(unix, { vault: 'small', backend: 'namespace', policy: 'permissive' });
      const sbTcp = await sandbox(tcp, { vault: 'small', backend: 'namespace', policy: 'permissive' });
      // Interleaved, so the machine's drift over the run weighs on both alike.
      const samples = { unix: [] as number[], tcp: [] as number[] };
      for (let i = 0; i < runs + 5; i++)
        for (const [name, c, id] of [['unix', unix, sbUnix], ['tcp', tcp, sbTcp]] as const) {
          const t0 = performance.now();
          await execTrue(c, id)();
          if (i >= 5) samples[name].push(performance.now() - t0);
        }
      const stats = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length });
      ctx.add({ name: 'API exec /bin/true, Unix socket (collected, namespace)', corral: stats(samples.unix), baseline: { label: 'in-process pipeline', value: inProcess }, target: plusAtMost(2) });
      ctx.add({ name: 'API exec /bin/true, TCP + API key', corral: stats(samples.tcp), baseline: { label: 'in-process pipeline', value: inProcess }, target: plusAtMost(3) });
    }

    if (part('create')) {
      ctx.progress(`sandbox create (fork of ${files.toLocaleString('en-US')} files) + first exec`);
      const bwrap = await measure(runs, () => rawBwrap(ws), { warmup: 5 });
      const createFirst = await measure(ctx.quick ? 8 : 20, async () => {
        const id = await sandbox(unix, { vault: 'big', backend: 'namespace', policy: 'permissive' });
        await execTrue(unix, id)();
      }, { warmup: 2 });
      ctx.add({ name: `sandbox create (fork, ${files.toLocaleString('en-US')} files) + first exec`, corral: createFirst, baseline: { label: 'raw bwrap /bin/true', value: bwrap }, anchor: { label: 'Daytona create-to-first-command (cloud)', value: 186 }, target: ratioAtMost(3) });
    }

    if (part('creates')) {
      ctx.progress('100 sandboxes created at once');
      const lat: number[] = [];
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 100 }, async () => {
        const s = performance.now();
        await sandbox(unix, { vault: 'small', policy: 'permissive' });
        lat.push(performance.now() - s);
      }));
      const total = performance.now() - t0;
      ctx.add({ name: '100 concurrent creates: p50 latency', corral: median(lat), runs: 100 });
      ctx.add({ name: '100 concurrent creates: p95 latency', corral: percentile(lat, 95), runs: 100 });
      ctx.add({ name: '100 concurrent creates: total', corral: total, runs: 1, note: lat.length === 100 ? 'all 100 succeeded' : `${lat.length} succeeded` });
    }

    if (part('idle')) {
      ctx.progress('1,000 idle sandboxes');
      const idle = ctx.quick ? 200 : 1000;
      const rssBefore = rssKiB(daemon.pid!);
      for (let i = 0; i < idle; i += 50) await Promise.all(Array.from({ length: 50 }, () => sandbox(unix, { vault: 'small', policy: 'permissive', labels: { idle: 'yes' } })));
      const rssAfter = rssKiB(daemon.pid!);
      const procs = children(daemon.pid!).length;
      const perSandbox = Math.max(0, rssAfter - rssBefore) / idle;
      ctx.add({ name: `${idle.toLocaleString('en-US')} idle sandboxes: daemon RSS growth per sandbox`, unit: 'KiB', corral: perSandbox, target: { text: '≤ 100 KiB, no processes', pass: (r) => r.corral !== null && r.corral <= 100 && procs === 0 }, note: `${procs} child processes of the daemon; RSS ${rssBefore} → ${rssAfter} KiB` });
    }

    if (part('concurrency')) {
      const seconds = ctx.quick ? 5 : 60;
      ctx.progress(`64 concurrent execs for ${seconds} s vs raw bwrap at 64`);
      const sbs = await Promise.all(Array.from({ length: 8 }, () => sandbox(unix, { vault: 'small', backend: 'namespace', policy: 'permissive' })));
      const fdsBefore = openFds(daemon.pid!);
      const loop = async (body: () => Promise<void>, until: number) => {
        let n = 0;
        let errors = 0;
        await Promise.all(Array.from({ length: 64 }, async () => {
          while (performance.now() < until) {
            try {
              await body();
              n++;
            } catch {
              errors++;
            }
          }
        }));
        return { n, errors };
      };
      const rawStart = performance.now();
      const raw = await loop(() => rawBwrap(ws), rawStart + (seconds * 1000) / 4);
      const rawRate = (raw.n * 1000) / (performance.now() - rawStart);
      let k = 0;
      const apiStart = performance.now();
      const api = await loop(() => execTrue(unix, sbs[k++ % sbs.length]!)(), apiStart + seconds * 1000);
      const apiRate = (api.n * 1000) / (performance.now() - apiStart);
      await new Promise((r) => setTimeout(r, 500));
      const leakedFds = openFds(daemon.pid!) - fdsBefore;
      const leakedProcs = children(daemon.pid!).length;
      ctx.add({
        name: `64 concurrent API execs for ${seconds} s (throughput)`,
        unit: 'ops/s',
        corral: apiRate,
        baseline: { label: '64 concurrent raw bwrap', value: rawRate },
        target: { text: '≥ 70% of raw bwrap, no errors or leaks', pass: (r) => r.ratio !== undefined && r.ratio >= 0.7 && api.errors === 0 && leakedProcs === 0 && leakedFds <= 2 },
        note: `${api.n} execs, ${api.errors} errors; afterwards ${leakedProcs} child processes, fd delta ${leakedFds}`,
      });
    }

    if (part('streaming')) {
      ctx.progress('100 MiB of output streamed to a client');
      const mib = ctx.quick ? 20 : 100;
      // Streamed BENCH_STREAM_RUNS times (default 3, 1 when quick), the median counts: one run is noisy on a small box.
      const streamRuns = Math.max(1, Number(process.env.BENCH_STREAM_RUNS ?? (ctx.quick ? 1 : 3)) || 1);
      const sbStream = await sandbox(unix, { vault: 'small', backend: 'namespace', policy: 'permissive' });
      const rssStart = rssKiB(daemon.pid!);
      let peak = rssStart;
      const shell = `head -c ${mib}M /dev/zero | tr '\\0' 'x'`;
      // The SDK client (corral/node over the socket) as an application reads it: every output frame's bytes.
      const sdk = connectSdk({ socket: join(home, 'corral.sock') });
      const sdkSandbox = await sdk.sandboxes.get(sbStream);
      const rates: number[] = [];
      const wireRates: number[] = [];
      let bytes = 0;
      for (let i = 0; i < streamRuns; i++) {
        const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(daemon.pid!))), 20);
        // A streamed exec: its client owns the output, so none is dropped however fast it comes.
        let s0 = performance.now();
        bytes = await unix.drain(`/v1/sandboxes/${sbStream}/exec`, { shell });
        wireRates.push(mib / ((performance.now() - s0) / 1000));
        s0 = performance.now();
        let got = 0;
        for await (const f of sdkSandbox.stream(shell)) if (f.type === 'output') got += f.data.byteLength;
        rates.push(mib / ((performance.now() - s0) / 1000));
        clearInterval(sampler);
        if (got !== mib * 1024 * 1024) throw new Error(`the SDK client got ${got} bytes of ${mib} MiB`);
      }
      ctx.add({
        name: `${mib} MiB of exec output streamed to an SDK client over the Unix socket (streamed exec)`,
        unit: 'MiB/s',
        corral: median(rates),
        runs: streamRuns,
        target: { text: '≥ 200 MiB/s', pass: (r) => r.corral !== null && r.corral >= 200 },
        note: `SDK runs ${rates.map((r) => r.toFixed(0)).join(', ')} MiB/s; a bare HTTP reader of the same SSE: ${wireRates.map((r) => r.toFixed(0)).join(', ')} MiB/s (${(bytes / 1024 / 1024).toFixed(0)} MiB on the wire); daemon RSS ${rssStart} → peak ${peak} KiB`,
      });
    }
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
    setup.close();
  }
}

export const daemonBench: Bench = { name: 'daemon', title: 'The daemon: API round trips, sandbox creation, idle cost, concurrency, streaming', run };
