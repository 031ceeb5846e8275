import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { request } from 'node:http';
import WebSocket from 'ws';
import { createApi } from '../../src/api/api-app.ts';
import { createExecSocketServer } from '../../src/api/exec-socket.ts';
import { startDaemonServer } from '../../src/daemon/daemon-server.ts';
import { execFrameSchema, execRecordSchema, type ExecFrameWire } from '../../src/protocol/api-schemas.ts';
import { openCorral, tempDir } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

async function daemon(withKeys = false) {
  const corral = openCorral();
  corral.vaults.create('src');
  const app = createApi({ corral, logger: quiet, version: '0.0.0', ...(withKeys ? { auth: { keys: corral.keys } } : {}) });
  const sockets = createExecSocketServer({ execs: corral.execs, logger: quiet, ...(withKeys ? { keys: corral.keys } : {}) });
  const socketPath = join(tempDir(), 'd.sock');
  const server = await startDaemonServer({ fetch: app.fetch, socketPath, tcp: { port: 0 }, upgrade: sockets.handleUpgrade });
  const close = async () => {
    sockets.close();
    await server.close();
  };
  return { corral, socketPath, server, close };
}

function post(socketPath: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Attaches over the Unix socket; collects frames until the server closes. */
function attach(socketPath: string, path: string, onOpen: (ws: WebSocket) => void = () => {}, onFrame: (f: ExecFrameWire, ws: WebSocket) => void = () => {}) {
  const ws = new WebSocket(`ws+unix://${socketPath}:${path}`, ['corral.v1']);
  const frames: ExecFrameWire[] = [];
  const errors: unknown[] = [];
  const closed = new Promise<{ code: number }>((resolve, reject) => {
    ws.on('open', () => onOpen(ws));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'error') return void errors.push(m);
      const f = execFrameSchema.parse(m);
      frames.push(f);
      onFrame(f, ws);
    });
    ws.on('close', (code) => resolve({ code }));
    ws.on('error', reject);
  });
  return { ws, frames, errors, closed };
}

const out = (frames: ExecFrameWire[]) => frames.map((f) => (f.type === 'output' && f.stream === 'stdout' ? Buffer.from(f.data, f.encoding).toString() : '')).join('');

test('attach WebSocket: frames replayed then live, stdin and EOF, bad messages answered, exit then close 1000', async () => {
  const d = await daemon();
  try {
    const sb = d.corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'permissive' });
    const bg = execRecordSchema.parse((await post(d.socketPath, `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo hello; cat; echo bye', background: true, openStdin: true })).body);
    let sent = false;
    const a = attach(d.socketPath, `/v1/execs/${bg.id}/attach`, undefined, (f, ws) => {
      if (!sent && f.type === 'output') {
        sent = true;
        ws.send('not json');
        ws.send(JSON.stringify({ type: 'stdin', data: 'from ws\n' }));
        ws.send(JSON.stringify({ type: 'stdin', data: Buffer.from('b64\n').toString('base64'), encoding: 'base64' }));
        ws.send(JSON.stringify({ type: 'eof' }));
      }
    });
    assert.equal((await a.closed).code, 1000);
    assert.equal(out(a.frames), 'hello\nfrom ws\nb64\nbye\n');
    assert.equal(a.frames.at(-1)!.type, 'exit');
    assert.equal(a.errors.length, 1);
    // Re-attach from an offset after the end: the rest and the exit frame.
    const again = attach(d.socketPath, `/v1/execs/${bg.id}/attach?stdout=6`);
    await again.closed;
    assert.equal(out(again.frames), 'from ws\nb64\nbye\n');

    // kill over the socket
    const sleeper = execRecordSchema.parse((await post(d.socketPath, `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo up; sleep 60', background: true })).body);
    const k = attach(d.socketPath, `/v1/execs/${sleeper.id}/attach`, undefined, (f, ws) => {
      if (f.type === 'output') ws.send(JSON.stringify({ type: 'kill', signal: 'TERM' }));
    });
    await k.closed;
    const exit = k.frames.at(-1)!;
    assert.ok(exit.type === 'exit' && exit.exec.state === 'completed' && exit.exec.result?.exitCode === null);
  } finally {
    await d.close();
  }
});

test('attach refusals: unknown path, bad id, unknown exec, no key over TCP', async () => {
  const d = await daemon(true);
  try {
    const refused = (url: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, ['corral.v1'], { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => {});
      });
    assert.equal(await refused(`ws+unix://${d.socketPath}:/v1/nothing`), 404);
    assert.equal(await refused(`ws+unix://${d.socketPath}:/v1/execs/exec_nope/attach`), 400);
    assert.equal(await refused(`ws+unix://${d.socketPath}:/v1/execs/exec_00000000000000000000000000/attach`), 404);
    const tcp = `ws://127.0.0.1:${d.server.tcp!.port}/v1/execs/exec_00000000000000000000000000/attach`;
    assert.equal(await refused(tcp), 401);
    assert.equal(await refused(tcp, { authorization: 'Bearer crl_wrong' }), 401);
    const key = d.corral.keys.create({ tenant: 'acme', scopes: ['sandboxes:read'] });
    assert.equal(await refused(tcp, { authorization: `Bearer ${key.secret}` }), 403);
    const ok = d.corral.keys.create({ tenant: 'acme', scopes: ['exec'] });
    // Another tenant's (here: the owner's) exec is not found.
    const sb = d.corral.sandboxes.create({ vault: 'src', backend: 'host', policy: 'permissive' });
    const { info, done } = d.corral.execs.start(sb.id, { argv: ['true'], background: true });
    await done;
    assert.equal(await refused(`ws://127.0.0.1:${d.server.tcp!.port}/v1/execs/${info.id}/attach`, { authorization: `Bearer ${ok.secret}` }), 404);
  } finally {
    await d.close();
  }
});

/** POST /v1/execs/{id}/start attached (Accept: text/event-stream): the whole SSE text. */
function startAttached(socketPath: string, id: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request({ socketPath, path: `/v1/execs/${id}/start`, method: 'POST', agent: false, headers: { 'content-type': 'application/json', accept: 'text/event-stream' } }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

test('exec instances (Docker style): create runs nothing, start runs it detached or attached (with the attach flags), a refused start marks it failed', async () => {
  const d = await daemon();
  try {
    const sb = d.corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'permissive' });
    const created = await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { shell: 'echo instance > i.txt; echo ran' });
    assert.equal(created.status, 201);
    const rec = execRecordSchema.parse(created.body);
    assert.equal(rec.state, 'created');
    assert.equal(rec.startedAt, null);
    const started = await post(d.socketPath, `/v1/execs/${rec.id}/start`, {});
    assert.equal(started.status, 202);
    const ended = await d.corral.execs.wait(rec.id);
    assert.equal(ended.state, 'completed');
    assert.equal(ended.result?.stdout, 'ran\n');
    assert.equal((await post(d.socketPath, `/v1/execs/${rec.id}/start`, {})).body.error.code, 'EXEC_STATE');

    // Attached start: the frames come on the start request itself.
    const attached = execRecordSchema.parse((await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { shell: 'echo attached' })).body);
    assert.deepEqual(attached.attach, { stdin: false, stdout: true, stderr: true });
    const sse = await startAttached(d.socketPath, attached.id);
    assert.match(sse, /event: output\n[^]*"data":"attached\\n"/);
    assert.match(sse, /event: exit\n/);

    // Docker's attach flags: the attached start sends only stdout; stderr is still kept.
    const quiet = execRecordSchema.parse((await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { shell: 'echo out; echo err >&2', attachStderr: false })).body);
    assert.deepEqual(quiet.attach, { stdin: false, stdout: true, stderr: false });
    const onlyOut = await startAttached(d.socketPath, quiet.id);
    assert.match(onlyOut, /"stream":"stdout"[^]*"data":"out\\n"/);
    assert.doesNotMatch(onlyOut, /"stream":"stderr"/);
    assert.match(onlyOut, /event: exit\n/);
    assert.equal((await d.corral.execs.wait(quiet.id)).stderrBytes, 4);
    // The attach WebSocket honours them too (here on the ended exec: its replay).
    const ws = attach(d.socketPath, `/v1/execs/${quiet.id}/attach`);
    await ws.closed;
    assert.deepEqual(ws.frames.filter((f) => f.type === 'output').map((f) => f.type === 'output' && f.stream), ['stdout']);
    const stderrOnly = execRecordSchema.parse((await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { shell: 'echo out; echo err >&2', attachStdout: false })).body);
    const onlyErr = await startAttached(d.socketPath, stderrOnly.id);
    assert.match(onlyErr, /"stream":"stderr"[^]*"data":"err\\n"/);
    assert.doesNotMatch(onlyErr, /"stream":"stdout"/);
    // The flags belong to created execs: a plain exec gives its client both streams.
    const refused = await post(d.socketPath, `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'], attachStdout: false });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.message, /created exec/);

    const doomed = execRecordSchema.parse((await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { argv: ['true'] })).body);
    d.corral.store.db.run("UPDATE sandboxes SET state = 'paused' WHERE id = ?", sb.id);
    assert.equal((await post(d.socketPath, `/v1/execs/${doomed.id}/start`, {})).status, 409);
    const failed = d.corral.execs.get(doomed.id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error?.code, 'SANDBOX_STATE');
    assert.equal((await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { argv: ['true'], background: true })).status, 400);
  } finally {
    await d.close();
  }
});

test('a PTY over the attach WebSocket: type a command and read it back, resize, exit code; flow control acks', async () => {
  const d = await daemon();
  try {
    const sb = d.corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'permissive' });
    const created = await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { argv: ['bash', '--norc', '-i'], env: { HISTFILE: '/dev/null', PS1: '$ ' }, tty: { cols: 80, rows: 24 }, openStdin: true });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    assert.equal((await post(d.socketPath, `/v1/execs/${id}/start`, { tty: { cols: 90, rows: 20 } })).status, 202);
    let screen = '';
    let step = 0;
    const a = attach(d.socketPath, `/v1/execs/${id}/attach?ack=true`, (ws) => ws.send(JSON.stringify({ type: 'stdin', data: 'stty size\r' })), (f, ws) => {
      if (f.type !== 'output') return;
      screen += Buffer.from(f.data, f.encoding).toString();
      ws.send(JSON.stringify({ type: 'ack', offset: f.offset + Buffer.from(f.data, f.encoding).length }));
      if (step === 0 && screen.includes('20 90')) {
        step = 1;
        ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
        ws.send(JSON.stringify({ type: 'stdin', data: 'stty size\r' }));
      } else if (step === 1 && screen.includes('40 120')) {
        step = 2;
        ws.send(JSON.stringify({ type: 'stdin', data: 'exit 3\r' }));
      }
    });
    await a.closed;
    assert.equal(step, 2, screen);
    const exit = a.frames.at(-1)!;
    assert.ok(exit.type === 'exit' && exit.exec.exitCode === 3, JSON.stringify(exit));
    assert.equal(exit.type === 'exit' && exit.exec.result?.tty, true);
    assert.deepEqual(a.errors, []);
  } finally {
    await d.close();
  }
});

test('exec instances take a user: a uid, uid:gid or a name inside a namespace sandbox; bad ones are 400; the host backend refuses', async () => {
  const d = await daemon();
  try {
    const sb = d.corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'permissive' });
    const runAs = async (user: string) => {
      const created = await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { argv: ['id'], user });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await post(d.socketPath, `/v1/execs/${created.body.id}/start`, {});
      return (await d.corral.execs.wait(created.body.id)).result!;
    };
    assert.match((await runAs('1000')).stdout, /^uid=1000\b.*gid=1000\b/);
    assert.match((await runAs('1000:1001')).stdout, /^uid=1000\b.*gid=1001\b/);
    assert.match((await runAs('nobody')).stdout, /^uid=65534\b/);
    for (const bad of ['no such user', '70000', 'ghost-user-x']) assert.equal((await post(d.socketPath, `/v1/sandboxes/${sb.id}/execs`, { argv: ['id'], user: bad })).status, 400, bad);
    const host = d.corral.sandboxes.create({ vault: 'src', backend: 'host', policy: 'permissive' });
    const r = await post(d.socketPath, `/v1/sandboxes/${host.id}/exec`, { argv: ['id'], user: '1000' });
    assert.equal(r.body.status, 'failed');
    assert.equal(r.body.error.code, 'BACKEND_UNAVAILABLE');
  } finally {
    await d.close();
  }
});
