// The MCP server in-process (the official client over the SDK's in-memory transport): every tool,
// bad arguments, a denied command, an approval round trip, resources, a bound server, tenants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execResultSchema, fileListSchema, sandboxSchema } from '../../src/protocol/api-schemas.ts';
import { numberLines } from '../../src/mcp/mcp-text.ts';
import { openCorral } from '../helpers.ts';
import { call, inProcessClient } from './mcp-client.ts';

const OWNER = { tenant: null };

async function setup() {
  const corral = openCorral();
  corral.vaults.create('src');
  corral.files.write('src', '/README.md', Buffer.from('# demo\nhello world\nthe end\n'));
  const client = await inProcessClient({ corral, scope: OWNER });
  const sb = sandboxSchema.parse((await call(client, 'sandbox_create', { vault: 'src', backend: 'namespace', name: 'work' })).data);
  return { corral, client, sb };
}

test('tools: listed with descriptions and JSON schemas; every sandbox tool takes sandbox', async () => {
  const { client } = await setup();
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  assert.deepEqual(names, ['checkpoint_list', 'checkpoint_restore', 'checkpoint_save', 'diff', 'edit_file', 'exec', 'exec_kill', 'exec_output', 'exec_wait', 'list_files', 'read_file', 'sandbox_create', 'sandbox_destroy', 'sandbox_list', 'search', 'write_file']);
  for (const t of tools) {
    assert.ok((t.description ?? '').length > 60, t.name);
    assert.equal(t.inputSchema.type, 'object');
    assert.equal(t.outputSchema?.type, 'object', t.name);
    assert.equal((t.inputSchema as { additionalProperties?: boolean }).additionalProperties, false, t.name);
  }
  const exec = tools.find((t) => t.name === 'exec')!;
  assert.ok(exec.inputSchema.properties?.sandbox);
  assert.deepEqual(exec.inputSchema.required, ['sandbox']);
});

test('exec: the result envelope with the change summary; background with output, wait and kill', async () => {
  const { client, sb } = await setup();
  const r = await call(client, 'exec', { sandbox: 'work', command: 'echo made > new.txt && cat README.md | head -1 && echo oops >&2' });
  assert.equal(r.isError, false, r.text);
  const env = execResultSchema.parse(r.data.result);
  assert.equal(env.status, 'completed');
  assert.equal(env.exitCode, 0);
  assert.equal(env.stdout, '# demo\n');
  assert.deepEqual(env.changes?.added.map((a) => a.path), ['/new.txt']);
  assert.match(r.text, /completed: exit 0/);
  assert.match(r.text, /added \/new\.txt/);
  assert.match(r.text, /--- stderr ---\noops/);

  const argv = await call(client, 'exec', { sandbox: sb.id, argv: ['sh', '-c', 'exit 3'] });
  assert.equal(argv.isError, false, 'a non-zero exit is data');
  assert.equal(argv.data.result.exitCode, 3);

  const bg = await call(client, 'exec', { sandbox: 'work', command: 'echo one; echo two >&2; sleep 0.2; echo three', background: true });
  assert.equal(bg.data.state, 'running');
  assert.equal(bg.data.result, null);
  assert.match(bg.data.exec, /^exec_/);
  const waited = await call(client, 'exec_wait', { exec: bg.data.exec, timeoutMs: 20_000 });
  assert.equal(waited.data.state, 'completed');
  assert.equal(waited.data.result.stdout, 'one\nthree\n');
  const out = await call(client, 'exec_output', { exec: bg.data.exec, maxBytes: 4 });
  assert.equal(out.data.stdout, 'one\n');
  assert.equal(out.data.more, true);
  const rest = await call(client, 'exec_output', { exec: bg.data.exec, stdoutOffset: out.data.stdoutOffset, stderrOffset: out.data.stderrOffset });
  assert.equal(rest.data.stdout, 'three\n');
  assert.equal(rest.data.stderr, 'two\n');
  assert.equal(rest.data.more, false);
  assert.equal(rest.data.exitCode, 0);

  const long = await call(client, 'exec', { sandbox: 'work', argv: ['sleep', '30'], background: true });
  const killed = await call(client, 'exec_kill', { exec: long.data.exec });
  assert.equal(killed.isError, false, killed.text);
  const end = await call(client, 'exec_wait', { exec: long.data.exec, timeoutMs: 20_000 });
  assert.notEqual(end.data.state, 'running');
  const again = await call(client, 'exec_kill', { exec: long.data.exec });
  assert.equal(again.isError, true);
  assert.match(again.text, /^EXEC_STATE: /);
});

test('files: read with line numbers and ranges, write, edit (exact, ambiguous), list, search', async () => {
  const { client } = await setup();
  const read = await call(client, 'read_file', { sandbox: 'work', path: 'README.md', startLine: 2, endLine: 2 });
  assert.equal(read.data.content, '     2\thello world\n');
  assert.equal(read.data.totalLines, 3);
  assert.equal(read.data.truncated, true);
  assert.match(read.text, /lines 2-2 \(more: read from startLine 3\)/);

  const w = await call(client, 'write_file', { sandbox: 'work', path: '/src/a.ts', content: 'let a = 1;\nlet b = 1;\n' });
  assert.equal(w.isError, false, w.text);
  assert.equal(w.data.size, 22);
  assert.ok(w.data.commit);
  const amb = await call(client, 'edit_file', { sandbox: 'work', path: '/src/a.ts', oldText: '= 1', newText: '= 2' });
  assert.equal(amb.isError, true);
  assert.match(amb.text, /^EDIT_AMBIGUOUS: oldText occurs 2 times/);
  const ed = await call(client, 'edit_file', { sandbox: 'work', path: '/src/a.ts', oldText: '= 1', newText: '= 2', replaceAll: true });
  assert.equal(ed.data.replacements, 2);
  assert.equal((await call(client, 'read_file', { sandbox: 'work', path: 'src/a.ts' })).data.content, '     1\tlet a = 2;\n     2\tlet b = 2;\n');

  const ls = await call(client, 'list_files', { sandbox: 'work', recursive: true });
  assert.deepEqual(fileListSchema.parse(ls.data).entries.map((e) => e.path), ['/README.md', '/src', '/src/a.ts']);
  assert.match(ls.text, /d +\d+  \/src\//);

  const grep = await call(client, 'search', { sandbox: 'work', query: 'let \\w', path: '/src' });
  assert.deepEqual(grep.data.matches, [{ path: '/src/a.ts', line: 1, text: 'let a = 2;' }, { path: '/src/a.ts', line: 2, text: 'let b = 2;' }]);
  const fts = await call(client, 'search', { sandbox: 'work', query: 'hello', mode: 'text' });
  assert.deepEqual(fts.data.files.map((f: { path: string }) => f.path), ['/README.md']);

  const dir = await call(client, 'read_file', { sandbox: 'work', path: '/src' });
  assert.match(dir.text, /^IS_A_DIRECTORY: .*list_files/);
  const missing = await call(client, 'read_file', { sandbox: 'work', path: '/nope.txt' });
  assert.equal(missing.isError, true);
  const escape = await call(client, 'read_file', { sandbox: 'work', path: '../../etc/passwd' });
  assert.equal(escape.isError, true);
  assert.match(escape.text, /^INVALID_PATH: /);
});

test('checkpoints and diff: save, change, diff since the start and since a checkpoint, restore', async () => {
  const { client } = await setup();
  await call(client, 'write_file', { sandbox: 'work', path: 'one.txt', content: '1\n' });
  const cp = await call(client, 'checkpoint_save', { sandbox: 'work', name: 'before', message: 'one file' });
  assert.equal(cp.data.name, 'before');
  await call(client, 'exec', { sandbox: 'work', command: 'echo 2 > two.txt && rm README.md' });
  const all = await call(client, 'diff', { sandbox: 'work' });
  assert.deepEqual(all.data.summary.added, 2);
  assert.deepEqual(all.data.changes.map((c: { path: string; change: string }) => `${c.change} ${c.path}`), ['deleted /README.md', 'added /one.txt', 'added /two.txt']);
  assert.match(all.data.changes[2].patch, /\+2/);
  const since = await call(client, 'diff', { sandbox: 'work', from: 'before' });
  assert.deepEqual(since.data.changes.map((c: { path: string }) => c.path), ['/README.md', '/two.txt']);
  const list = await call(client, 'checkpoint_list', { sandbox: 'work' });
  assert.ok(list.data.checkpoints.some((c: { name: string }) => c.name === 'before'));
  const restored = await call(client, 'checkpoint_restore', { sandbox: 'work', name: 'before' });
  assert.equal(restored.isError, false, restored.text);
  const ls = await call(client, 'list_files', { sandbox: 'work' });
  assert.deepEqual(ls.data.entries.map((e: { path: string }) => e.path), ['/README.md', '/one.txt']);
  const bad = await call(client, 'checkpoint_restore', { sandbox: 'work', name: 'nope' });
  assert.match(bad.text, /^CHECKPOINT_NOT_FOUND: /);
});

test('bad arguments are rejected with a clear error', async () => {
  const { client } = await setup();
  const unknown = await call(client, 'exec', { sandbox: 'work', command: 'true', bogus: 1 });
  assert.equal(unknown.isError, true);
  assert.match(unknown.text, /Invalid arguments for tool exec.*bogus/s);
  const type = await call(client, 'read_file', { sandbox: 'work', path: 42 });
  assert.equal(type.isError, true);
  assert.match(type.text, /Invalid arguments for tool read_file/);
  const both = await call(client, 'exec', { sandbox: 'work' });
  assert.match(both.text, /^INVALID_ARGUMENT: give exactly one of command .* and argv/);
  const noSandbox = await call(client, 'list_files', {});
  assert.match(noSandbox.text, /Invalid arguments for tool list_files/);
  const gone = await call(client, 'list_files', { sandbox: 'nosuch' });
  assert.match(gone.text, /^SANDBOX_NOT_FOUND: /);
  const badExec = await call(client, 'exec_wait', { exec: 'exec_nope' });
  assert.match(badExec.text, /^INVALID_ARGUMENT: 'exec_nope' is not an exec id/);
});

test('a denied command is a tool error that says why and what to do instead', async () => {
  const { client } = await setup();
  const r = await call(client, 'exec', { sandbox: 'work', command: 'rm -rf /' });
  assert.equal(r.isError, true);
  assert.match(r.text, /^denied: the policy does not allow this command \(rule workstation\.root-wipe/);
  assert.match(r.text, /why: .*Name the files inside the workspace to delete instead/);
  assert.match(r.text, /Do not retry it as it is/);
  assert.equal(r.data.result.status, 'denied');
});

test('approval round trip: pending with the approval id, approved by a person, resumed with exec {approval}', async () => {
  const { corral, client, sb } = await setup();
  const r = await call(client, 'exec', { sandbox: 'work', command: 'eval echo approved-run' });
  assert.equal(r.isError, false, r.text);
  assert.equal(r.data.state, 'pending');
  const id = r.data.approval.id as string;
  assert.match(id, /^apr_[0-9a-f]{16}$/);
  assert.match(r.text, new RegExp(`corral approvals approve ${id}`));
  assert.match(r.text, new RegExp(`\\{"approval": "${id}"\\}`));
  const pending = corral.approvals.list({ state: 'pending' });
  assert.deepEqual(pending.map((a) => a.id), [id]);
  assert.equal(corral.approvals.sandboxOf(pending[0]!.vault)?.id, sb.id);

  const early = await call(client, 'exec', { sandbox: 'work', approval: id });
  assert.equal(early.data.state, 'pending');
  assert.match(early.text, /not answered yet/);
  const mixed = await call(client, 'exec', { sandbox: 'work', approval: id, command: 'true' });
  assert.match(mixed.text, /^INVALID_ARGUMENT: with approval/);

  corral.approvals.approve(id, 'fine');
  const ran = await call(client, 'exec', { sandbox: 'work', approval: id });
  assert.equal(ran.isError, false, ran.text);
  assert.equal(ran.data.result.status, 'completed');
  assert.equal(ran.data.result.stdout, 'approved-run\n');
  const twice = await call(client, 'exec', { sandbox: 'work', approval: id });
  assert.equal(twice.isError, true);
  assert.match(twice.text, /used: it cannot run a command/);

  // Waiting for the answer in the same call: denied by a person.
  const waiting = call(client, 'exec', { sandbox: 'work', command: 'eval echo nope', waitForApprovalMs: 20_000 });
  let apr: string | undefined;
  while (!apr) {
    await new Promise((res) => setTimeout(res, 20));
    apr = corral.approvals.list({ state: 'pending' })[0]?.id;
  }
  corral.approvals.deny(apr, 'not today');
  const denied = await waiting;
  assert.equal(denied.isError, true);
  assert.match(denied.text, /a person denied it: not today/);
});

test('resources: workspace files by URI template, the audit log, the change history', async () => {
  const { client, sb } = await setup();
  await call(client, 'write_file', { sandbox: 'work', path: 'dir/x.json', content: '{"a":1}' });
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate).sort(), ['corral-audit://{sandbox}', 'corral-history://{sandbox}', 'corral://{sandbox}/{+path}']);
  const { resources } = await client.listResources();
  assert.ok(resources.some((r) => r.uri === `corral://${sb.id}/dir/x.json` && r.mimeType === 'application/json'));
  const file = await client.readResource({ uri: `corral://work/dir/x.json` });
  assert.deepEqual(file.contents, [{ uri: 'corral://work/dir/x.json', mimeType: 'application/json', text: '{"a":1}' }]);
  const audit = JSON.parse(((await client.readResource({ uri: `corral-audit://${sb.id}` })).contents[0] as { text: string }).text);
  assert.ok(audit.records.some((r: { op: string; target: string }) => r.target === '/dir/x.json'));
  const history = JSON.parse(((await client.readResource({ uri: `corral-history://${sb.id}` })).contents[0] as { text: string }).text);
  assert.ok(history.commits.length >= 2);
  await assert.rejects(client.readResource({ uri: 'corral://work/../../etc/passwd' }));
});

test('a server bound to one sandbox hides the sandbox argument and the sandbox tools', async () => {
  const corral = openCorral();
  const sb = corral.sandboxes.create({ backend: 'namespace', name: 'solo' });
  const other = corral.sandboxes.create({ backend: 'namespace', name: 'other' });
  const client = await inProcessClient({ corral, scope: OWNER, sandbox: 'solo' });
  const { tools } = await client.listTools();
  assert.ok(!tools.some((t) => t.name.startsWith('sandbox_')));
  for (const t of tools) assert.equal(t.inputSchema.properties?.sandbox, undefined, t.name);
  const w = await call(client, 'write_file', { path: 'a.txt', content: 'x' });
  assert.equal(w.isError, false, w.text);
  assert.equal(corral.sandboxFiles.read(sb.id, '/a.txt', {}, OWNER).data.length, 1);
  const sneaky = await call(client, 'list_files', { sandbox: other.id });
  assert.match(sneaky.text, /Invalid arguments.*sandbox/s);
  await assert.rejects(client.readResource({ uri: `corral://${other.id}/a.txt` }), /this server works in/);
});

test("a tenant's server sees only its own sandboxes", async () => {
  const corral = openCorral();
  corral.keys.create({ tenant: 'acme', scopes: ['exec'] });
  corral.keys.create({ tenant: 'beta', scopes: ['exec'] });
  const theirs = corral.sandboxes.create({ backend: 'namespace', name: 'theirs' }, { tenant: 'beta' });
  const client = await inProcessClient({ corral, scope: { tenant: 'acme' } });
  const mine = await call(client, 'sandbox_create', { backend: 'namespace' });
  assert.equal(mine.isError, false, mine.text);
  const list = await call(client, 'sandbox_list');
  assert.deepEqual(list.data.sandboxes.map((s: { id: string }) => s.id), [mine.data.id]);
  for (const [name, args] of [['exec', { command: 'true' }], ['read_file', { path: 'x' }], ['diff', {}], ['sandbox_destroy', {}]] as const) {
    const r = await call(client, name, { sandbox: theirs.id, ...args });
    assert.match(r.text, /^SANDBOX_NOT_FOUND: /, name);
  }
  const destroyed = await call(client, 'sandbox_destroy', { sandbox: mine.data.id });
  assert.equal(destroyed.data.state, 'destroyed');
});

test('numberLines: cat -n form, ranges past the end, an empty file', () => {
  assert.deepEqual(numberLines('a\nb\n', 1, 10), { content: '     1\ta\n     2\tb\n', endLine: 2, totalLines: 2 });
  assert.deepEqual(numberLines('a\nb', 2, 2), { content: '     2\tb\n', endLine: 2, totalLines: 2 });
  assert.deepEqual(numberLines('a\n', 5, 9), { content: '', endLine: 4, totalLines: 1 });
  assert.deepEqual(numberLines('', 1, 5), { content: '', endLine: 0, totalLines: 0 });
});
