// The MCP server (issue 5 §3): `exec` of /bin/true through `corral mcp` over stdio (the official
// MCP client spawning bin/corral mcp --sandbox), against the API round trip of the same exec over a
// real `corral daemon`'s Unix socket, on the same home and the same kind of sandbox (namespace,
// permissive). Interleaved, so the machine's drift weighs on both alike. Target: ≤ API + 3 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Corral } from '../src/services/corral.ts';
import { benchCaller, freshDir, median, type Bench, type BenchContext, type Row } from './lib.ts';

const CLI = resolve(import.meta.dirname, '..', 'bin', 'corral');

function post(socketPath: string, agent: Agent, path: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolvePost, reject) => {
    const req = request({ socketPath, agent, method: path === '/v1/ping' ? 'GET' : 'POST', path, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolvePost({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function startDaemon(home: string, agent: Agent): Promise<ChildProcess> {
  const child = spawn(CLI, ['daemon'], { env: { ...process.env, CORRAL_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`the daemon exited: ${err.slice(-2000)}`);
    try {
      if ((await post(join(home, 'corral.sock'), agent, '/v1/ping', undefined)).status === 200) return child;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the daemon did not answer: ${err.slice(-2000)}`);
}

const plusAtMost = (ms: number) => ({ text: `≤ baseline + ${ms} ms`, pass: (r: Row) => r.corral !== null && r.baseline !== undefined && r.corral <= r.baseline.value + ms });

async function run(ctx: BenchContext): Promise<void> {
  const runs = ctx.quick ? 15 : 50;
  const home = freshDir(ctx.scratch, 'home');
  const setup = new Corral({ home, caller: benchCaller });
  setup.vaults.create('small');
  const forMcp = setup.sandboxes.create({ vault: 'small', backend: 'namespace', policy: 'permissive' });
  const forApi = setup.sandboxes.create({ vault: 'small', backend: 'namespace', policy: 'permissive' });
  setup.close();

  const agent = new Agent({ keepAlive: true });
  const daemon = await startDaemon(home, agent);
  const transport = new StdioClientTransport({ command: CLI, args: ['mcp', '--sandbox', forMcp.id], env: { ...process.env, CORRAL_HOME: home } as Record<string, string>, stderr: 'ignore' });
  const mcp = new Client({ name: 'corral-bench', version: '0.0.0' });
  try {
    await mcp.connect(transport);
    await mcp.listTools();
    const viaMcp = async () => {
      const r = (await mcp.callTool({ name: 'exec', arguments: { argv: ['/bin/true'] } })) as CallToolResult;
      const result = (r.structuredContent as { result?: { exitCode: number | null } } | undefined)?.result;
      if (r.isError || result?.exitCode !== 0) throw new Error(`mcp exec: ${JSON.stringify(r.content).slice(0, 300)}`);
    };
    const viaApi = async () => {
      const r = await post(join(home, 'corral.sock'), agent, `/v1/sandboxes/${forApi.id}/exec`, { argv: ['/bin/true'] });
      if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`api exec: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    };
    ctx.progress('MCP exec /bin/true over stdio vs the API round trip over the Unix socket');
    const samples = { mcp: [] as number[], api: [] as number[] };
    for (let i = 0; i < runs + 5; i++)
      for (const [name, fn] of [['mcp', viaMcp], ['api', viaApi]] as const) {
        const t0 = performance.now();
        await fn();
        if (i >= 5) samples[name].push(performance.now() - t0);
      }
    const stats = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length });
    ctx.add({ name: 'MCP exec /bin/true through stdio (corral mcp, namespace)', corral: stats(samples.mcp), baseline: { label: 'API exec round trip (Unix socket)', value: stats(samples.api) }, target: plusAtMost(3) });
  } finally {
    await mcp.close().catch(() => undefined);
    agent.destroy();
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('close', r));
  }
}

export const mcpBench: Bench = { name: 'mcp', title: 'The MCP server: exec over stdio against the API round trip', run };
