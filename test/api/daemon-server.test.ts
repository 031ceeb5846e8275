import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, linkSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { z } from 'zod';
import { createApi } from '../../src/api/api-app.ts';
import { readJson } from '../../src/api/api-middleware.ts';
import { startDaemonServer } from '../../src/daemon/daemon-server.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { CLI, ROOT, tempDir } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

const backends = { probeAll: async () => [], select: async () => ({ backend: { health: async () => ({ ok: true, warnings: [] }) } }) };

function get(target: { socketPath: string } | { port: number }, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, ...('port' in target ? { host: '127.0.0.1' } : {}), path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function app() {
  return createApi({ corral: { exec: { backends } }, logger: quiet, version: '0.0.1', bodyLimit: 64 * 1024 });
}

/** A chunked POST (no Content-Length) of `parts`, as a streaming client sends it. */
function postChunked(socketPath: string, path: string, parts: string[]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

test('serves the API on a 0600 Unix socket and on loopback TCP; close drains and removes the socket', async () => {
  const dir = tempDir();
  const socketPath = join(dir, 'corral.sock');
  const a = app();
  a.post('/t/echo', async (c) => c.json(await readJson(c, z.object({ data: z.string() }).strict())));
  const server = await startDaemonServer({ fetch: a.fetch, socketPath, tcp: { port: 0 } });
  try {
    const st = statSync(socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['corral.sock'], 'the private bind directory is gone');
    const ping = await get({ socketPath }, '/v1/ping');
    assert.equal(ping.status, 200);
    assert.deepEqual(ping.body, { ok: true, version: '0.0.1', apiVersion: 1 });
    assert.match(String(ping.headers['x-request-id']), /^req_/);
    // Bodies through the real Node adapter: chunked, within and over the limit; a POST to a GET route.
    assert.deepEqual(await postChunked(socketPath, '/t/echo', ['{"data":', '"hi"}']), { status: 200, body: { data: 'hi' } });
    const huge = await postChunked(socketPath, '/t/echo', ['{"data":"', ...Array.from({ length: 100 }, () => 'x'.repeat(1024)), '"}']);
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal((await postChunked(socketPath, '/v1/ping', ['{}'])).status, 405);
    assert.equal(server.tcp?.host, '127.0.0.1');
    const overTcp = await get({ port: server.tcp!.port }, '/v1/nope', 'POST');
    assert.equal(overTcp.status, 404);
    assert.equal(overTcp.body.error.code, 'NOT_FOUND');
  } finally {
    await server.close();
  }
  assert.equal(existsSync(socketPath), false);
  await server.close();
});

test('close lets a request in flight finish', async () => {
  const dir = tempDir();
  const socketPath = join(dir, 'd.sock');
  const a = app();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  a.get('/t/slow', async (c) => {
    entered();
    await gate;
    return c.json({ done: true });
  });
  const server = await startDaemonServer({ fetch: a.fetch, socketPath, drainMs: 5000 });
  const pending = get({ socketPath }, '/t/slow');
  await inside;
  const closed = server.close();
  release();
  assert.deepEqual((await pending).body, { done: true });
  await closed;
  assert.equal(existsSync(socketPath), false);
});

test('a stale socket is replaced; a live one, or a file that is not a socket, is refused and left alone', async () => {
  const dir = tempDir();
  // A SIGKILLed daemon leaves its socket file behind, with nobody listening: emulate it with a
  // second link to a bound socket whose server then closes (closing unlinks only the first name).
  const socketPath = join(dir, 'bound.sock');
  const stalePath = join(dir, 'stale.sock');
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(socketPath, r));
  linkSync(socketPath, stalePath);
  await new Promise<void>((r) => dead.close(() => r()));
  assert.ok(statSync(stalePath).isSocket());

  const first = await startDaemonServer({ fetch: app().fetch, socketPath: stalePath });
  try {
    assert.equal((await get({ socketPath: stalePath }, '/v1/ping')).status, 200);
    await assert.rejects(startDaemonServer({ fetch: app().fetch, socketPath: stalePath }), (e) => isCorralError(e, 'DAEMON_ALREADY_RUNNING'));
    assert.equal((await get({ socketPath: stalePath }, '/v1/ping')).status, 200, 'the first daemon still serves');
  } finally {
    await first.close();
  }

  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  await assert.rejects(startDaemonServer({ fetch: app().fetch, socketPath: file }), (e) => isCorralError(e, 'CONFLICT'));
  assert.ok(statSync(file).isFile());
});

test('refuses non-loopback TCP and over-long socket paths', async () => {
  const dir = tempDir();
  await assert.rejects(startDaemonServer({ fetch: app().fetch, socketPath: join(dir, 'a.sock'), tcp: { port: 0, host: '0.0.0.0' } }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  await assert.rejects(startDaemonServer({ fetch: app().fetch, socketPath: join(dir, 'x'.repeat(120)) }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.deepEqual(readdirSync(dir), []);
});

test('corral daemon: prints the socket and version, logs JSON lines, exits 0 on SIGTERM and removes the socket', async () => {
  const home = tempDir();
  const child = spawn(CLI, ['daemon', '--json'], { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
        if (stdout.trimEnd().endsWith('}')) resolve();
      });
      child.on('close', () => reject(new Error(`daemon exited early: ${stderr}`)));
    });
    const info = JSON.parse(stdout) as { version: string; socket: string; tcp: null };
    assert.equal(info.socket, join(home, 'corral.sock'));
    assert.equal(info.tcp, null);
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.equal(statSync(info.socket).mode & 0o777, 0o600);
    const ping = await get({ socketPath: info.socket }, '/v1/ping');
    assert.equal(ping.body.version, info.version);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(existsSync(info.socket), false);
    const lines = stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; path?: string; requestId?: string });
    assert.deepEqual(lines.map((l) => l.msg), ['daemon listening', 'request', 'draining', 'daemon stopped']);
    assert.equal(lines[1]?.requestId, ping.headers['x-request-id']);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }
});

test('the Unix socket serves only its owner: a peer of another uid is refused by its credentials (SO_PEERCRED), even where the file mode would let it in', async () => {
  const dir = tempDir();
  const socketPath = join(dir, 'd.sock');
  const refused: string[] = [];
  const server = await startDaemonServer({ fetch: app().fetch, socketPath, onError: (e) => refused.push(e.message) });
  try {
    const { chmodSync } = await import('node:fs');
    // As if someone loosened the mode (or a group were given access): the gatekeeper still refuses.
    chmodSync(dir, 0o755);
    chmodSync(socketPath, 0o666);
    const asNobody = (code: string) =>
      new Promise<{ out: string; err: string }>((resolve) => {
        const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', '-c', code]);
        let out = '';
        let err = '';
        child.stdout.on('data', (b: Buffer) => (out += b));
        child.stderr.on('data', (b: Buffer) => (err += b));
        child.on('close', () => resolve({ out, err }));
      });
    const probe = `import socket;s=socket.socket(socket.AF_UNIX);s.connect(${JSON.stringify(socketPath)});s.sendall(b'GET /v1/ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');print(repr(s.recv(200)))`;
    const nobody = await asNobody(probe);
    // Closed unanswered: an empty read, or a reset since its request was never read.
    assert.ok(nobody.out.trim() === "b''" || /ConnectionResetError/.test(nobody.err), `no answer for uid 65534: ${nobody.out}${nobody.err}`);
    assert.match(refused.join('\n'), /refused a connection from uid 65534/);
    // Its owner is served as before.
    assert.equal((await get({ socketPath }, '/v1/ping')).status, 200);
  } finally {
    await server.close();
  }
});
