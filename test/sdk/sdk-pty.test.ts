import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Corral as BrowserCorral } from '../../src/sdk/index.ts';
import { connect, isCorralApiError, nodeWebSocketFactory, type Corral, type Sandbox, type Terminal, type WebSocketFactory } from '../../src/sdk/node.ts';
import { startTestDaemon } from './sdk-daemon.ts';

const daemon = await startTestDaemon();
const ALL = ['sandboxes:read', 'sandboxes:write', 'exec', 'files'] as const;

/** Reads a terminal's output into a screen, a chunk at a time. */
function reader(term: Terminal) {
  const it = term[Symbol.asyncIterator]();
  const dec = new TextDecoder();
  const r = {
    screen: '',
    bytes: 0,
    /** Reads until the screen matches (or the output ends: then it fails). */
    async until(pattern: RegExp): Promise<void> {
      while (!pattern.test(r.screen)) {
        const next = await it.next();
        if (next.done) assert.fail(`the output ended before ${pattern}: ${JSON.stringify(r.screen.slice(-300))}`);
        r.bytes += next.value.length;
        r.screen += dec.decode(next.value, { stream: true });
      }
    },
    /** Reads to the end. */
    async rest(): Promise<void> {
      for (let next = await it.next(); !next.done; next = await it.next()) {
        r.bytes += next.value.length;
        r.screen += dec.decode(next.value, { stream: true });
      }
    },
  };
  return r;
}

const bash = { cmd: ['bash', '--norc', '-i'], env: { PS1: '$ ' } };

// The same session over the three ways a client reaches the attach WebSocket.
const clients: [string, () => Corral][] = [
  ['unix socket (ws)', () => daemon.owner],
  ['tcp + key as a subprotocol (the global WebSocket, as in a browser)', () => BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key([...ALL]) })],
  ['tcp + key in the Authorization header (corral/node over a URL)', () => connect({ url: daemon.url, apiKey: daemon.key([...ALL]) })],
];

for (const [name, make] of clients) {
  test(`${name}: a PTY session: stty size, resize, exit 3`, { timeout: 30_000 }, async () => {
    const client = make();
    const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
    const term = await sb.pty.create({ cols: 80, rows: 24, ...bash });
    assert.match(term.id, /^exec_/);
    assert.equal(term.sandboxId, sb.id);
    assert.equal(term.connected, true);
    const out = reader(term);
    term.write('stty size\r');
    await out.until(/24 80/);
    term.resize(120, 40);
    term.write(new TextEncoder().encode('stty size\r'));
    await out.until(/40 120/);
    term.write('exit 3\r');
    await out.rest();
    const record = await term.wait();
    assert.equal(record.exitCode, 3);
    assert.equal(term.exitCode, 3);
    assert.equal(record.result?.tty, true);
    await assert.rejects(term.wait({ check: true }), (e: Error) => e.name === 'CommandExitError');
    assert.throws(() => term.write('x'), (e) => isCorralApiError(e, 'UNAVAILABLE'), 'no connection after the exit');
    await term.close();
    await sb.destroy();
  });
}

test('attach to a running terminal by id: the screen so far is replayed; close() kills unless keepRunning', { timeout: 30_000 }, async () => {
  const sb = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const term = await sb.pty.create({ cols: 80, rows: 24, ...bash });
  const first = reader(term);
  term.write('echo mark-$((6*7))\r');
  await first.until(/mark-42/);
  await term.close({ keepRunning: true });
  assert.equal((await daemon.owner.execs.get(term.id)).state, 'running', 'keepRunning leaves it running');
  assert.throws(() => term.write('x'), (e) => isCorralApiError(e, 'EXEC_STATE'));

  const again = await sb.pty.attach(term.id);
  const second = reader(again);
  await second.until(/mark-42/);
  again.write('echo back-$((2+3))\r');
  await second.until(/back-5/);
  await again.close();
  const ended = await (await daemon.owner.execs.get(term.id)).wait({ timeoutMs: 10_000 });
  assert.equal(ended.state, 'completed');
  assert.equal(ended.signal, 'SIGKILL', 'close() killed it');
  await assert.rejects(sb.pty.attach('exec_00000000000000000000000000'), (e) => isCorralApiError(e, 'EXEC_NOT_FOUND'));
  const other = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  await assert.rejects(other.pty.attach(term.id), (e) => isCorralApiError(e, 'EXEC_NOT_FOUND'), "another sandbox's exec");
  await assert.rejects(sb.pty.create({ cols: 0, rows: 24 }), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => again.resize(2000, 10), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  await other.destroy();
  await sb.destroy();
});

test('flow control: megabytes of output are read to the end (acknowledged as read); wait, kill, onError', { timeout: 60_000 }, async () => {
  const sb = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  // More than the daemon lets a terminal run ahead of an acking reader (1 MiB): without acks it would stall.
  const big = await sb.pty.create({ cols: 80, rows: 24, cmd: "head -c 2500000 /dev/zero | tr '\\0' x" });
  const out = reader(big);
  await out.rest();
  assert.equal(out.bytes, 2_500_000);
  assert.equal((await big.wait()).exitCode, 0);

  const errors: string[] = [];
  const sleeper = await sb.pty.create({ cols: 80, rows: 24, cmd: ['sleep', '60'], onError: (e) => errors.push(e.code) });
  await assert.rejects(sleeper.wait({ timeoutMs: 50 }), (e) => isCorralApiError(e, 'TIMEOUT'));
  const ac = new AbortController();
  const aborted = sleeper.wait({ signal: ac.signal });
  ac.abort(new Error('stop waiting'));
  await assert.rejects(aborted, /stop waiting/);
  await sleeper.kill('TERM');
  const ended = await sleeper.wait();
  assert.equal(ended.exitCode, null);
  assert.equal(ended.signal, 'SIGTERM');
  await assert.rejects(sleeper.kill(), (e) => isCorralApiError(e, 'EXEC_STATE'));
  await sleeper.close();
  await sb.destroy();
});

test('a dropped connection is re-attached once from the offsets reached: nothing missed or repeated', { timeout: 30_000 }, async () => {
  let opened = 0;
  const inner = nodeWebSocketFactory(daemon.socket);
  // The first socket is closed under the terminal after its first message.
  const dropping: WebSocketFactory = (url, init) => {
    const ws = inner(url, init);
    if (opened++ === 0) {
      let onmessage: typeof ws.onmessage = null;
      Object.defineProperty(ws, 'onmessage', {
        get: () => onmessage,
        set: (fn: typeof ws.onmessage) => {
          onmessage = fn === null ? null : (event) => {
            fn(event);
            ws.close();
          };
        },
      });
    }
    return ws;
  };
  const client = connect({ socket: daemon.socket, webSocket: dropping });
  const sb: Sandbox = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const term = await sb.pty.create({ cols: 80, rows: 24, cmd: 'for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done' });
  const out = reader(term);
  await out.rest();
  assert.equal((await term.wait()).exitCode, 0);
  assert.equal(opened, 2, 're-attached once');
  assert.deepEqual(out.screen.split('\r\n').filter(Boolean), ['line1', 'line2', 'line3', 'line4', 'line5']);
  client.close();
  await sb.destroy();
});

test('refusals are typed: no exec scope on create (403), attach refused over either WebSocket', { timeout: 30_000 }, async () => {
  const full = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key([...ALL], 'tenant-r') });
  const sb = await full.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const readKey = daemon.key(['sandboxes:read'], 'tenant-r');
  const reader1 = BrowserCorral.connect({ url: daemon.url, apiKey: readKey });
  const asReader = await reader1.sandboxes.get(sb.id);
  await assert.rejects(asReader.pty.create({ cols: 80, rows: 24 }), (e) => isCorralApiError(e, 'PERMISSION_DENIED'));

  const term = await sb.pty.create({ cols: 80, rows: 24, cmd: ['sleep', '60'] });
  // The browser's WebSocket hides the refusal: the SDK reads the exec over HTTP and explains.
  await assert.rejects(asReader.pty.attach(term.id), (e) => isCorralApiError(e, 'UNAVAILABLE') && /exec scope/.test(e.message));
  // The ws package reads the refusal's envelope.
  const nodeReader = connect({ url: daemon.url, apiKey: readKey });
  await assert.rejects((await nodeReader.sandboxes.get(sb.id)).pty.attach(term.id), (e) => isCorralApiError(e, 'PERMISSION_DENIED') && e.status === 403);
  // Another tenant: not found.
  const beta = connect({ url: daemon.url, apiKey: daemon.key([...ALL], 'beta-r') });
  await assert.rejects(beta.execs.get(term.id), (e) => isCorralApiError(e, 'EXEC_NOT_FOUND'));
  // Aborting the attach.
  const ac = new AbortController();
  ac.abort(new Error('never mind'));
  await assert.rejects(sb.pty.attach(term.id, { signal: ac.signal }), /never mind/);
  await term.close();
  await (await daemon.owner.execs.get(term.id)).wait();
  await sb.destroy();
});
