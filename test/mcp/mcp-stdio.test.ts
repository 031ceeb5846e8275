// `corral mcp` as an agent harness runs it: spawned over stdio by the official MCP client (and by the
// MCP Inspector's CLI), with a temp CORRAL_HOME. stdout carries only the protocol.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CLI, ROOT, corral as corralCli, openCorral, tempDir } from '../helpers.ts';
import { call } from './mcp-client.ts';

async function spawnMcp(home: string, args: string[]): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({ command: CLI, args: ['mcp', ...args], env: { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '' } as Record<string, string>, stderr: 'pipe' });
  let err = '';
  transport.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const client = new Client({ name: 'corral-test', version: '0.0.0' });
  await client.connect(transport);
  return { client, stderr: () => err };
}

test('corral mcp --vault: makes a sandbox on the vault, runs the tools, denies, and round-trips an approval', async () => {
  const home = tempDir();
  const { client, stderr } = await spawnMcp(home, ['--vault', 'proj', '--backend', 'namespace']);
  try {
    assert.match(stderr(), /corral mcp: made sandbox sbx_\w+ on vault proj/);
    const { tools } = await client.listTools();
    assert.equal(tools.length, 13);
    assert.ok(tools.every((t) => t.inputSchema.properties?.sandbox === undefined));

    const made = await call(client, 'exec', { command: 'mkdir -p src && echo "export const x = 1;" > src/x.ts' });
    assert.equal(made.isError, false, made.text);
    assert.deepEqual(made.data.result.changes.added.map((a: { path: string }) => a.path).sort(), ['/src/x.ts']);
    const read = await call(client, 'read_file', { path: '/src/x.ts' });
    assert.equal(read.data.content, '     1\texport const x = 1;\n');

    const denied = await call(client, 'exec', { command: 'cat ~/.ssh/id_rsa' });
    assert.equal(denied.isError, true);
    assert.match(denied.text, /^denied: .*\nwhy: .*host path/s);

    const bad = await call(client, 'exec', { command: 42 });
    assert.equal(bad.isError, true);
    assert.match(bad.text, /Invalid arguments for tool exec/);

    const pending = await call(client, 'exec', { command: 'eval echo via-approval > approved.txt' });
    assert.equal(pending.data.state, 'pending');
    const id = pending.data.approval.id as string;
    // The approval shows in the CLI, where a person answers it (here: the services on the same home).
    const listed = corralCli(home, ['approvals', 'list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(JSON.stringify(listed.json).includes(id));
    const corral = openCorral(home);
    corral.approvals.approve(id, 'ok');
    const ran = await call(client, 'exec', { approval: id });
    assert.equal(ran.isError, false, ran.text);
    assert.deepEqual(ran.data.result.changes.added.map((a: { path: string }) => a.path), ['/approved.txt']);
    // The changes landed in the vault itself (the sandbox works on it, not on a fork).
    assert.equal(new TextDecoder().decode(corral.files.cat('proj', '/approved.txt')), 'via-approval\n');

    const { resources } = await client.listResources();
    assert.ok(resources.some((r) => r.uri.endsWith('/src/x.ts')));
  } finally {
    await client.close();
  }

  // A second start reuses the sandbox on the vault.
  const again = await spawnMcp(home, ['--vault', 'proj']);
  try {
    assert.match(again.stderr(), /corral mcp: using sandbox/);
    const ls = await call(again.client, 'list_files', {});
    assert.ok(ls.data.entries.some((e: { path: string }) => e.path === '/approved.txt'));
  } finally {
    await again.client.close();
  }
});

test('corral mcp: usage errors on stderr, nothing on stdout', () => {
  const home = tempDir();
  const r = corralCli(home, ['mcp', '--sandbox', 'x', '--vault', 'y']);
  assert.notEqual(r.code, 0);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /give --sandbox or --vault, not both/);
  const missing = corralCli(home, ['mcp', '--sandbox', 'nosuch']);
  assert.notEqual(missing.code, 0);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /SANDBOX_NOT_FOUND/);
});

test('the MCP Inspector CLI lists the tools of corral mcp and calls one', () => {
  const home = tempDir();
  const inspector = join(ROOT, 'node_modules', '.bin', 'mcp-inspector');
  const env = { ...process.env, CORRAL_HOME: home, CORRAL_VAULT: '' };
  // The Inspector starts the server with a bare environment: the home is passed to it explicitly
  // (else `corral mcp` would use ~/.corral).
  const serverEnv = ['-e', `CORRAL_HOME=${home}`];
  const list = spawnSync(inspector, ['--cli', ...serverEnv, CLI, 'mcp', '--vault', 'insp', '--method', 'tools/list'], { env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(list.status, 0, list.stderr);
  const names = (JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.map((t) => t.name);
  assert.ok(names.includes('exec') && names.includes('read_file'), names.join(' '));
  const called = spawnSync(inspector, ['--cli', ...serverEnv, CLI, 'mcp', '--vault', 'insp', '--method', 'tools/call', '--tool-name', 'exec', '--tool-arg', 'command=echo from-inspector'], { env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(called.status, 0, called.stderr);
  const result = JSON.parse(called.stdout) as { structuredContent: { result: { stdout: string; status: string } } };
  assert.equal(result.structuredContent.result.status, 'completed');
  assert.equal(result.structuredContent.result.stdout, 'from-inspector\n');
  // It worked on the test's home, not on the user's.
  assert.ok(existsSync(join(home, 'corral.db')));
});
