import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  claimPidFile,
  daemonPaths,
  daemonStatus,
  inspectPidFile,
  isAlive,
  processIdentity,
  releasePidFile,
  removeStalePidFile,
  rotateLog,
  spawnDaemon,
  stopDaemon,
  tailLines,
  updatePidFile,
  type PidRecord,
} from '../../src/daemon/daemon-process.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { ROOT, tempDir } from '../helpers.ts';

function selfRecord(over: Partial<PidRecord> = {}): PidRecord {
  return { ...processIdentity(process.pid)!, state: 'starting', socket: '/nowhere.sock', tcp: null, version: '1.0.0', startedAt: Date.now(), ...over };
}

/** The pid of a process that has exited (and been reaped): its pid is free. */
function deadPid(): number {
  const r = spawnSync('/bin/true');
  return r.pid!;
}

test('processIdentity: this process has a start time and boot id; a dead pid and nonsense are undefined', () => {
  const me = processIdentity(process.pid);
  assert.ok(me);
  assert.match(me.started, /^\d+$/);
  assert.match(me.boot, /^[0-9a-f-]{36}$/);
  assert.ok(isAlive(me));
  assert.equal(isAlive({ ...me, started: String(Number(me.started) + 1) }), false, 'another start time is another process');
  assert.equal(processIdentity(deadPid()), undefined);
  for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 60]) assert.equal(processIdentity(bad), undefined, String(bad));
});

test('claimPidFile: exclusive; a live daemon refuses, a stale or garbage file is replaced; release removes only its own', () => {
  const dir = tempDir();
  const path = join(dir, 'sub', 'daemon.pid');
  const record = selfRecord();
  claimPidFile(path, record);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(inspectPidFile(path), { kind: 'live', record });
  assert.throws(() => claimPidFile(path, record), (e) => isCorralError(e, 'DAEMON_ALREADY_RUNNING') && /corral daemon stop/.test(e.message));

  updatePidFile(path, { ...record, state: 'listening', tcp: { host: '127.0.0.1', port: 1234, tls: false } });
  const live = inspectPidFile(path);
  assert.equal(live.kind === 'live' && live.record.state, 'listening');
  assert.equal(live.kind === 'live' && live.record.tcp?.port, 1234);

  // Another process's file is never released or updated by this one.
  const other = { ...record, pid: deadPid() };
  assert.equal(releasePidFile(path, other), false);
  assert.throws(() => updatePidFile(path, other), (e) => isCorralError(e, 'CONFLICT'));
  assert.equal(releasePidFile(path, record), true);
  assert.equal(existsSync(path), false);
  assert.deepEqual(inspectPidFile(path), { kind: 'absent' });

  // Stale: the pid is gone, or the pid is reused by a process with another start time.
  for (const stale of [{ ...record, pid: deadPid() }, { ...record, started: '1' }]) {
    writeFileSync(path, JSON.stringify(stale));
    assert.equal(inspectPidFile(path).kind, 'stale');
    claimPidFile(path, record);
    assert.deepEqual(inspectPidFile(path), { kind: 'live', record });
    releasePidFile(path, record);
  }
  for (const garbage of ['', 'not json', '{"pid":"1"}', JSON.stringify({ ...record, tcp: { host: 1 } }), 'x'.repeat(100_000)]) {
    writeFileSync(path, garbage);
    assert.deepEqual(inspectPidFile(path), { kind: 'stale', record: null }, garbage.slice(0, 20));
    claimPidFile(path, record);
    assert.equal(inspectPidFile(path).kind, 'live');
    releasePidFile(path, record);
  }
  writeFileSync(path, JSON.stringify({ ...record, pid: deadPid() }));
  assert.equal(removeStalePidFile(path), true);
  assert.equal(existsSync(path), false);
  assert.equal(removeStalePidFile(path), false);
});

test('rotateLog keeps one .1 when the log is over the limit; tailLines reads the last lines from the end', () => {
  const dir = tempDir();
  const log = join(dir, 'daemon.log');
  assert.equal(rotateLog(log, 10), false, 'no log yet');
  writeFileSync(log, 'old\n');
  assert.equal(rotateLog(log, 10), false);
  writeFileSync(log, 'x'.repeat(11));
  assert.equal(rotateLog(log, 10), true);
  assert.equal(existsSync(log), false);
  assert.equal(readFileSync(`${log}.1`, 'utf8'), 'x'.repeat(11));
  writeFileSync(log, 'y'.repeat(20));
  assert.equal(rotateLog(log, 10), true);
  assert.equal(readFileSync(`${log}.1`, 'utf8'), 'y'.repeat(20), 'one generation is kept');

  assert.deepEqual(tailLines(join(dir, 'none'), 5), []);
  writeFileSync(log, 'a\nb\nc\n');
  assert.deepEqual(tailLines(log, 2), ['b', 'c']);
  assert.deepEqual(tailLines(log, 10), ['a', 'b', 'c']);
  assert.deepEqual(tailLines(log, 0), []);
  // From a byte offset (where a run's log began): only the lines written after it.
  assert.deepEqual(tailLines(log, 10, 2), ['b', 'c']);
  assert.deepEqual(tailLines(log, 10, 4), ['c']);
  assert.deepEqual(tailLines(log, 10, 6), []);
  const long = 'z'.repeat(100_000);
  writeFileSync(log, `first\n${long}\nlast\n`);
  assert.deepEqual(tailLines(log, 5, 6), [long, 'last'], 'lines longer than a read chunk');
  assert.deepEqual(tailLines(log, 1, 6), ['last']);
  writeFileSync(log, 'a\nb\nno newline');
  assert.deepEqual(tailLines(log, 2), ['b', 'no newline']);
  // Lines across the 64 KiB read chunks, and a first line cut by the chunking is not shown.
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'z'.repeat(i % 97)}`);
  writeFileSync(log, lines.join('\n') + '\n');
  assert.deepEqual(tailLines(log, 3000), lines.slice(-3000));
  assert.deepEqual(tailLines(log, 1), [lines[4999]]);
});

/**
 * A stand-in daemon (node, ~50 ms to start): claims the pid file, serves GET /v1/ping on the socket,
 * marks itself listening; on SIGTERM it closes and releases the pid file unless told to ignore it.
 */
function fakeDaemon(mode: 'ok' | 'stubborn' | 'crash' | 'silent', pidFile: string, socket: string): { command: string; args: string[] } {
  const src = pathToFileURL(join(ROOT, 'src/daemon/daemon-process.ts')).href;
  const script = `
    import { createServer } from 'node:http';
    import { claimPidFile, processIdentity, releasePidFile, updatePidFile } from ${JSON.stringify(src)};
    const [mode, pidFile, socket] = process.argv.slice(1);
    if (mode === 'crash') { process.stderr.write('{"level":50,"msg":"boom"}\\n'); process.exit(3); }
    if (mode === 'silent') { setInterval(() => {}, 1000); }
    else {
      const self = processIdentity(process.pid);
      const record = { ...self, state: 'starting', socket, tcp: null, version: '9.9.9', startedAt: Date.now() };
      claimPidFile(pidFile, record);
      const server = createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(req.url === '/v1/ping' ? JSON.stringify({ ok: true, version: '9.9.9', apiVersion: 1 }) : JSON.stringify({ daemon: { pid: process.pid, uptimeSeconds: 1.5 } }));
      });
      server.listen(socket, () => updatePidFile(pidFile, { ...record, state: 'listening' }));
      process.on('SIGTERM', () => {
        if (mode === 'stubborn') return;
        server.close(() => { releasePidFile(pidFile, self); process.exit(0); });
      });
    }`;
  return { command: process.execPath, args: ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script, mode, pidFile, socket] };
}

test('spawnDaemon waits for the pid file and a ping; status reads it; stopDaemon sends SIGTERM and removes the pid file', async () => {
  const home = tempDir();
  const paths = daemonPaths(home);
  const record = await spawnDaemon({ ...fakeDaemon('ok', paths.pidFile, paths.socket), pidFile: paths.pidFile, logFile: paths.logFile });
  assert.equal(record.state, 'listening');
  assert.equal(record.version, '9.9.9');
  assert.ok(isAlive(record));
  // Its own session: setsid made it a session leader.
  const stat = readFileSync(`/proc/${record.pid}/stat`, 'latin1');
  assert.equal(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3], String(record.pid));
  assert.equal(statSync(paths.logFile).mode & 0o777, 0o600);

  const s = await daemonStatus(paths);
  assert.equal(s.running, true);
  assert.equal(s.answering, true);
  assert.equal(s.pid, record.pid);
  assert.equal(s.version, '9.9.9');
  assert.equal(s.uptimeSeconds, 1.5);

  const stopped = await stopDaemon(paths, { timeoutMs: 5000, onKill: () => assert.fail('no SIGKILL needed') });
  assert.deepEqual(stopped, { running: false, stopped: true, pid: record.pid, forced: false, staleRemoved: false });
  assert.equal(isAlive(record), false);
  assert.equal(existsSync(paths.pidFile), false);
  assert.deepEqual(await stopDaemon(paths), { running: false, stopped: false, pid: null, forced: false, staleRemoved: false });
  const after = await daemonStatus(paths);
  assert.equal(after.running, false);
  assert.equal(after.pid, null);
});

test('stopDaemon: SIGKILL after the timeout (with a warning) and the socket file goes; a stale pid file is removed', async () => {
  const home = tempDir();
  const paths = daemonPaths(home);
  const record = await spawnDaemon({ ...fakeDaemon('stubborn', paths.pidFile, paths.socket), pidFile: paths.pidFile, logFile: paths.logFile });
  const killed: number[] = [];
  const r = await stopDaemon(paths, { timeoutMs: 200, onKill: (pid) => killed.push(pid) });
  assert.deepEqual(killed, [record.pid]);
  assert.equal(r.forced, true);
  assert.equal(isAlive(record), false);
  assert.equal(existsSync(paths.pidFile), false);
  assert.equal(existsSync(paths.socket), false, 'the dead daemon\'s socket file is removed');

  writeFileSync(paths.pidFile, JSON.stringify({ ...record, pid: deadPid() }));
  assert.deepEqual(await stopDaemon(paths), { running: false, stopped: false, pid: null, forced: false, staleRemoved: true });
  assert.equal(existsSync(paths.pidFile), false);
});

test('spawnDaemon: a daemon that exits early or never answers is DAEMON_START_FAILED with what this run logged', async () => {
  const home = tempDir();
  const paths = daemonPaths(home);
  writeFileSync(paths.logFile, '{"msg":"an earlier run"}\n');
  await assert.rejects(spawnDaemon({ ...fakeDaemon('crash', paths.pidFile, paths.socket), pidFile: paths.pidFile, logFile: paths.logFile }), (e) => {
    assert.ok(isCorralError(e, 'DAEMON_START_FAILED'));
    assert.match(e.message, /exited with code 3 before it answered/);
    assert.deepEqual(e.details.log, ['{"level":50,"msg":"boom"}'], 'only this run\'s lines');
    return true;
  });
  assert.match(readFileSync(paths.logFile, 'utf8'), /an earlier run[\s\S]*boom/, 'the log is appended to');

  let pid = 0;
  await assert.rejects(spawnDaemon({ ...fakeDaemon('silent', paths.pidFile, paths.socket), pidFile: paths.pidFile, logFile: paths.logFile, timeoutMs: 300 }), (e) => {
    assert.ok(isCorralError(e, 'DAEMON_START_FAILED'));
    assert.match(e.message, /did not answer within 300 ms, so it was killed/);
    pid = e.details.pid as number;
    return true;
  });
  for (let i = 0; i < 100 && processIdentity(pid); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(processIdentity(pid), undefined, 'the silent daemon was killed');

  await assert.rejects(spawnDaemon({ command: join(home, 'no-such-program'), args: [], pidFile: paths.pidFile, logFile: paths.logFile }), (e) => isCorralError(e, 'DAEMON_START_FAILED'));
});

test('a second daemon on the same pid file refuses to start while the first runs', async () => {
  const home = tempDir();
  const paths = daemonPaths(home);
  const first = await spawnDaemon({ ...fakeDaemon('ok', paths.pidFile, paths.socket), pidFile: paths.pidFile, logFile: paths.logFile });
  try {
    const child = spawn(fakeDaemon('ok', paths.pidFile, join(home, 'other.sock')).command, fakeDaemon('ok', paths.pidFile, join(home, 'other.sock')).args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.notEqual(code, 0);
    assert.match(stderr, /already runs \(pid \d+/);
    const st = inspectPidFile(paths.pidFile);
    assert.equal(st.kind === 'live' && st.record.pid, first.pid, 'the first daemon\'s pid file is untouched');
  } finally {
    await stopDaemon(paths, { timeoutMs: 5000 });
  }
});

test('daemonPaths: the home\'s files, or where CORRAL_DAEMON_* variables put them', () => {
  assert.deepEqual(daemonPaths('/h'), { pidFile: '/h/daemon.pid', logFile: '/h/daemon.log', socket: '/h/corral.sock' });
  assert.deepEqual(daemonPaths('/h', { CORRAL_DAEMON_PID_FILE: '/run/c.pid', CORRAL_DAEMON_SOCKET: '/run/c.sock', CORRAL_DAEMON_LOG_FILE: '' }), {
    pidFile: '/run/c.pid',
    logFile: '/h/daemon.log',
    socket: '/run/c.sock',
  });
});
