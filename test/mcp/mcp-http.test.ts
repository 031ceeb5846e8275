// The daemon's /mcp over Streamable HTTP: a real daemon on 127.0.0.1:0, the official client with an
// API key, the tools its scopes allow, the tenant's scope, auth refusals, an approval the exec waits for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startTestDaemon, type TestDaemon } from '../sdk/sdk-daemon.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import { call } from './mcp-client.ts';

const daemon: TestDaemon = await startTestDaemon();

async function connectHttp(url: string, secret: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', url), { requestInit: { headers: { authorization: `Bearer ${secret}` } } });
  const client = new Client({ name: 'corral-test', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '0' } } });
/** The scopes every MCP tool needs together. */
const ALL: KeyScope[] = ['sandboxes:read', 'sandboxes:write', 'exec', 'files'];
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

test('/mcp over HTTP with an API key: every sandbox tool, the tenant scope, a denial', async () => {
  const d = daemon;
  const client = await connectHttp(d.url, d.key(ALL, 'acme'));
  try {
    const { tools } = await client.listTools();
    assert.equal(tools.length, 16);
    const sb = await call(client, 'sandbox_create', { backend: 'namespace', name: 'web' });
    assert.equal(sb.isError, false, sb.text);
    assert.equal(d.service.sandboxes.tenantOf(sb.data.id), 'acme');
    const ex = await call(client, 'exec', { sandbox: 'web', command: 'echo hi | tee hi.txt' });
    assert.equal(ex.data.result.stdout, 'hi\n');
    const w = await call(client, 'write_file', { sandbox: 'web', path: 'b.txt', content: 'b\n' });
    assert.equal(w.isError, false, w.text);
    // The write is recorded as the API key that made it.
    const audit = d.service.store.audit.list({ vault: sb.data.vault }).filter((a) => a.target === '/b.txt');
    assert.match(audit[0]!.actor, /^key:/);
    const diff = await call(client, 'diff', { sandbox: 'web' });
    assert.deepEqual(diff.data.changes.map((c: { path: string }) => c.path), ['/b.txt', '/hi.txt']);
    const denied = await call(client, 'exec', { sandbox: 'web', command: 'rm -rf /' });
    assert.equal(denied.isError, true);
    assert.match(denied.text, /^denied: /);

    // Another tenant's sandbox is not found; the owner's list shows only acme's.
    const other = d.service.sandboxes.create({ backend: 'namespace' }, { tenant: 'beta' });
    const hidden = await call(client, 'read_file', { sandbox: other.id, path: 'x' });
    assert.match(hidden.text, /^SANDBOX_NOT_FOUND: /);
    const list = await call(client, 'sandbox_list');
    assert.deepEqual(list.data.sandboxes.map((s: { id: string }) => s.id), [sb.data.id]);
    const gone = await call(client, 'sandbox_destroy', { sandbox: 'web' });
    assert.equal(gone.data.state, 'destroyed');
  } finally {
    await client.close();
  }
});

test('/mcp over HTTP: an exec that waits for its approval runs once a person approves it', async () => {
  const d = daemon;
  const client = await connectHttp(d.url, d.key(ALL, 'acme'));
  try {
    const sb = await call(client, 'sandbox_create', { backend: 'namespace' });
    const running = call(client, 'exec', { sandbox: sb.data.id, command: 'eval echo waited', waitForApprovalMs: 30_000 });
    let id: string | undefined;
    while (!id) {
      await new Promise((res) => setTimeout(res, 20));
      id = d.service.approvals.list({ state: 'pending' }, { tenant: 'acme' }).find((a) => a.vault === sb.data.vault)?.id;
    }
    // A person answers over the API (the owner's socket), as the dashboard or `corral approvals approve` does.
    await d.owner.approvals.approve(id);
    const r = await running;
    assert.equal(r.isError, false, r.text);
    assert.equal(r.data.result.stdout, 'waited\n');
  } finally {
    await client.close();
  }
});

test('/mcp offers a key only the tools its scopes allow: files alone reads and writes files, runs nothing', async () => {
  const d = daemon;
  const sb = d.service.sandboxes.create({ backend: 'namespace', policy: 'permissive' }, { tenant: 'acme' });
  const client = await connectHttp(d.url, d.key(['files'], 'acme'));
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['diff', 'edit_file', 'list_files', 'read_file', 'search', 'write_file']);
    // A file larger than the API's 1 MiB JSON bodies: /mcp takes up to 24 MiB.
    const w = await call(client, 'write_file', { sandbox: sb.id, path: 'f.txt', content: 'x'.repeat(3 << 20) });
    assert.equal(w.isError, false, w.text);
    assert.equal(d.service.sandboxFiles.stat(sb.id, '/f.txt', { tenant: null }).size, 3 << 20);
    const ran = await call(client, 'exec', { sandbox: sb.id, command: 'touch ran' });
    assert.equal(ran.isError, true);
    assert.match(ran.text, /exec/);
    assert.equal(d.service.sandboxFiles.list(sb.id, '/', {}, { tenant: null }).entries.some((e) => e.name === 'ran'), false);
    const { resourceTemplates } = await client.listResourceTemplates();
    assert.deepEqual(resourceTemplates.map((t) => t.name), ['workspace-file'], 'the audit log needs admin, the history sandboxes:read');
  } finally {
    await client.close();
  }
});

test('/mcp auth: no key is 401, a key with no tool\'s scope is 403, GET is 405; the Unix socket is the owner', async () => {
  const d = daemon;
  const none = await fetch(new URL('/mcp', d.url), { method: 'POST', headers: mcpHeaders, body: initialize });
  assert.equal(none.status, 401);
  assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
  const weak = await fetch(new URL('/mcp', d.url), { method: 'POST', headers: { ...mcpHeaders, authorization: `Bearer ${d.key(['approvals'])}` }, body: initialize });
  assert.equal(weak.status, 403);
  assert.match(((await weak.json()) as { error: { message: string } }).error.message, /no scope any MCP tool needs/);
  const huge = await fetch(new URL('/mcp', d.url), { method: 'POST', headers: { ...mcpHeaders, authorization: `Bearer ${d.key(['exec'])}` }, body: 'x'.repeat(25 << 20) });
  assert.equal(huge.status, 413);
  const get = await fetch(new URL('/mcp', d.url), { headers: { authorization: `Bearer ${d.key(['exec'])}` } });
  assert.equal(get.status, 405);
  const ok = await fetch(new URL('/mcp', d.url), { method: 'POST', headers: { ...mcpHeaders, authorization: `Bearer ${d.key(['exec'])}` }, body: initialize });
  assert.equal(ok.status, 200);
  const body = (await ok.json()) as { result: { serverInfo: { name: string } } };
  assert.equal(body.result.serverInfo.name, 'corral');

  const { request } = await import('node:http');
  const viaSocket = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath: d.socket, path: '/mcp', method: 'POST', headers: mcpHeaders }, (res) => {
      let data = '';
      res.on('data', (b: Buffer) => (data += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(initialize);
  });
  assert.equal(viaSocket.status, 200, viaSocket.body);
});
