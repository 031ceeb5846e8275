import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { inspectPidFile, processIdentity } from '../../src/daemon/daemon-process.ts';
import { CLI, ROOT, corral, corralAsync, tempDir } from '../helpers.ts';

/** Kills whatever daemon a test home's pid file still names when the file ends (a failed test). */
function cleanupHome(home: string): void {
  after(() => {
    const st = inspectPidFile(join(home, 'daemon.pid'));
    if (st.kind === 'live') process.kill(st.record.pid, 'SIGKILL');
  });
}

function get(socketPath: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('daemon start → status → the API on the socket → logs → stop, then not running', async () => {
  const home = tempDir();
  cleanupHome(home);
  const started = corral(home, ['daemon', 'start', '--json']);
  assert.equal(started.code, 0, started.stderr + started.stdout);
  const info = started.json as { running: boolean; started: boolean; pid: number; socket: string; version: string; tcp: null; logFile: string; pidFile: string };
  assert.equal(info.running, true);
  assert.equal(info.started, true);
  assert.equal(info.socket, join(home, 'corral.sock'));
  assert.equal(info.pidFile, join(home, 'daemon.pid'));
  assert.equal(info.logFile, join(home, 'daemon.log'));
  assert.equal(statSync(info.socket).mode & 0o777, 0o600);
  assert.ok(processIdentity(info.pid), 'the daemon runs');
  const pidFile = JSON.parse(readFileSync(info.pidFile, 'utf8')) as { pid: number; started: string; state: string };
  assert.equal(pidFile.pid, info.pid);
  assert.equal(pidFile.state, 'listening');
  assert.equal(pidFile.started, processIdentity(info.pid)!.started);

  const status = corral(home, ['daemon', 'status', '--json']).json as { running: boolean; pid: number; version: string; uptimeSeconds: number; answering: boolean };
  assert.equal(status.running, true);
  assert.equal(status.answering, true);
  assert.equal(status.pid, info.pid);
  assert.equal(status.version, info.version);
  assert.ok(status.uptimeSeconds >= 0);
  const human = corral(home, ['daemon', 'status']);
  assert.match(human.stdout, new RegExp(`^running  pid ${info.pid}, version \\S+, up \\d+s\\nsocket   ${info.socket}\\n`));

  const ping = await get(info.socket, '/v1/ping');
  assert.equal(ping.status, 200);
  assert.equal(JSON.parse(ping.text).version, info.version);
  const metrics = await get(info.socket, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /^corral_http_requests_total\{method="GET",route="\/v1\/ping",status="200"\} [1-9]/m);

  // The daemon routes WebSocket upgrades: the event stream here (exec attach in the API tests).
  const events = new WebSocket(`ws+unix://${info.socket}:/v1/events`, ['corral.v1']);
  const firstEvent = new Promise<{ type: string }>((resolve, reject) => {
    events.on('message', (m) => resolve(JSON.parse(m.toString())));
    events.on('error', reject);
  });
  await new Promise((resolve, reject) => (events.on('open', resolve), events.on('error', reject)));
  assert.equal(corral(home, ['sandbox', 'create', '--backend', 'host', '--json']).code, 0);
  assert.equal((await firstEvent).type, 'created');
  events.close();

  // Starting again is not an error: it says the daemon already runs.
  const again = corral(home, ['daemon', 'start', '--json']);
  assert.equal(again.code, 0);
  assert.equal(again.json.started, false);
  assert.equal(again.json.pid, info.pid);

  // logs: raw JSON lines with --json, readable text otherwise, --lines for the last ones.
  const raw = corral(home, ['daemon', 'logs', '--json']);
  assert.equal(raw.code, 0);
  const lines = raw.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; path?: string });
  assert.equal(lines[0]!.msg, 'daemon listening');
  assert.ok(lines.some((l) => l.path === '/metrics'));
  const last = corral(home, ['daemon', 'logs', '--lines', '1', '--json']);
  assert.deepEqual(last.stdout.trim().split('\n'), [raw.stdout.trim().split('\n').at(-1)]);
  const pretty = corral(home, ['daemon', 'logs', '-n', '50']);
  assert.match(pretty.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  daemon listening version=/m);
  assert.match(pretty.stdout, / INFO  request requestId=req_\w+ method=GET path=\/v1\/ping status=200/);

  // --follow prints what is logged later, until it is stopped.
  const follower = spawn(CLI, ['daemon', 'logs', '--follow', '--lines', '0', '--json'], { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home } });
  let followed = '';
  follower.stdout.on('data', (b: Buffer) => (followed += b.toString()));
  const followerExit = new Promise<number | null>((r) => follower.on('close', r));
  // A request per round until the follower (started at the log's end, once Node is up) prints one.
  for (let i = 0; i < 100 && !followed.includes('/v1/system'); i++) {
    await get(info.socket, '/v1/system');
    await new Promise((r) => setTimeout(r, 100));
  }
  follower.kill('SIGTERM');
  assert.equal(await followerExit, 0);
  assert.match(followed, /"path":"\/v1\/system"/);
  assert.doesNotMatch(followed, /daemon listening/, '--lines 0 starts at the end');

  const stopped = corral(home, ['daemon', 'stop', '--json']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.deepEqual(stopped.json, { running: false, stopped: true, pid: info.pid, forced: false, staleRemoved: false });
  assert.equal(processIdentity(info.pid), undefined);
  assert.equal(existsSync(info.pidFile), false);
  assert.equal(existsSync(info.socket), false);
  assert.match(readFileSync(info.logFile, 'utf8'), /"msg":"draining"[\s\S]*"msg":"daemon stopped"/);

  const notRunning = corral(home, ['daemon', 'status', '--json']);
  assert.equal(notRunning.code, 0);
  assert.equal(notRunning.json.running, false);
  assert.equal(notRunning.json.pid, null);
  const stopAgain = corral(home, ['daemon', 'stop']);
  assert.equal(stopAgain.code, 0);
  assert.match(stopAgain.stdout, /no daemon is running/);
  assert.deepEqual(corral(home, ['daemon', 'stop', '--json']).json, { running: false, stopped: false, pid: null, forced: false, staleRemoved: false });
});

test('a stale pid file is replaced at start; an oversized log is rotated to daemon.log.1', () => {
  const home = tempDir();
  cleanupHome(home);
  const dead = spawn('/bin/true');
  const stale = { pid: dead.pid, started: '1', boot: 'x', state: 'listening', socket: join(home, 'corral.sock'), tcp: null, version: '0.0.0', startedAt: 1 };
  writeFileSync(join(home, 'daemon.pid'), JSON.stringify(stale));
  const old = 'x'.repeat(10 * 1024 * 1024 + 1);
  writeFileSync(join(home, 'daemon.log'), old);
  assert.equal(corral(home, ['daemon', 'status', '--json']).json.running, false, 'a stale pid file is not a running daemon');

  const started = corral(home, ['daemon', 'start', '--json']);
  assert.equal(started.code, 0, started.stderr);
  assert.notEqual(started.json.pid, dead.pid);
  assert.equal(statSync(join(home, 'daemon.log.1')).size, old.length);
  assert.ok(statSync(join(home, 'daemon.log')).size < 100_000);
  assert.equal(corral(home, ['daemon', 'stop', '--json']).json.stopped, true);
});

test('stop finds a foreground daemon too; a stale pid file alone is removed by stop', async () => {
  const home = tempDir();
  cleanupHome(home);
  const child = spawn(CLI, ['daemon', '--json'], { cwd: ROOT, env: { ...process.env, CORRAL_HOME: home } });
  const exited = new Promise<number | null>((r) => child.on('close', r));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.trimEnd().endsWith('}')) resolve();
    });
    child.on('close', () => reject(new Error('the daemon exited early')));
  });
  const stopped = await corralAsync(home, ['daemon', 'stop', '--json']);
  assert.equal(stopped.json.stopped, true);
  assert.equal(stopped.json.pid, child.pid);
  assert.equal(await exited, 0);
  assert.equal(existsSync(join(home, 'daemon.pid')), false);

  writeFileSync(join(home, 'daemon.pid'), 'garbage');
  const r = corral(home, ['daemon', 'stop']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /no daemon is running \(removed a stale pid file\)/);
  assert.equal(existsSync(join(home, 'daemon.pid')), false);
});

test('start fails with DAEMON_START_FAILED and what the daemon logged when it cannot listen; bad options fail at once', async () => {
  const home = tempDir();
  cleanupHome(home);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as { port: number }).port;
  try {
    const r = await corralAsync(home, ['daemon', 'start', '--port', String(port), '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.json.error.code, 'DAEMON_START_FAILED');
    assert.match(r.json.error.message, /exited with code \d+ before it answered/);
    assert.ok(r.json.error.details.log.some((l: string) => l.includes('EADDRINUSE')), JSON.stringify(r.json.error.details.log));
    const human = await corralAsync(home, ['daemon', 'start', '--port', String(port)]);
    assert.equal(human.code, 1);
    assert.match(human.stderr, /EADDRINUSE/);
    assert.match(human.stderr, /error \[DAEMON_START_FAILED\]/);
    assert.equal(existsSync(join(home, 'daemon.pid')), false, 'no pid file is left behind');
  } finally {
    busy.close();
  }
  for (const args of [['--port', 'x'], ['--host', '0.0.0.0', '--port', '1'], ['--tls-cert', 'c.pem', '--port', '1'], ['--timeout', 'soon']]) {
    const r = corral(home, ['daemon', 'start', ...args, '--json']);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.json.error.code, 'INVALID_ARGUMENT');
  }
  assert.equal(existsSync(join(home, 'daemon.log')), true);
  assert.equal(corral(home, ['daemon', 'logs', '--lines', 'x', '--json']).code, 2);
});
