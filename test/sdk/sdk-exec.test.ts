import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Corral as BrowserCorral } from '../../src/sdk/index.ts';
import { CommandExitError, connect, isCorralApiError, isNotFound, joinOutput, type Corral, type ExecFrame, type Sandbox } from '../../src/sdk/node.ts';
import { freePort, startTestDaemon } from './sdk-daemon.ts';

const daemon = await startTestDaemon();
const dec = new TextDecoder();

function text(frames: ExecFrame[], stream: 'stdout' | 'stderr'): string {
  return dec.decode(joinOutput(frames, stream));
}

async function collect(iterable: AsyncIterable<ExecFrame>, stop: (f: ExecFrame) => boolean = () => false): Promise<ExecFrame[]> {
  const out: ExecFrame[] = [];
  for await (const f of iterable) {
    out.push(f);
    if (stop(f)) break;
  }
  return out;
}

async function sandbox(client: Corral, labels: Record<string, string> = {}): Promise<Sandbox> {
  // A new empty vault each: an API key's tenant sees only its own vaults.
  return client.sandboxes.create({ backend: 'namespace', policy: 'permissive', labels });
}

// The same client code over both transports: the Unix socket (node:http) and TCP (the global fetch, with a key).
const clients: [string, () => Corral][] = [
  ['unix socket', () => daemon.owner],
  ['tcp + api key', () => BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read', 'sandboxes:write', 'exec', 'files']) })],
];

for (const [name, make] of clients) {
  test(`${name}: ping, create, get, list by label, exec argv and shell, stdin, execOrThrow, destroy`, async () => {
    const client = make();
    const ping = await client.ping();
    assert.equal(ping.ok, true);
    assert.equal(ping.version, '0.0.1');
    assert.ok((await client.system()).cpus.count > 0);

    const sb = await sandbox(client, { suite: name });
    assert.match(sb.id, /^sbx_/);
    assert.equal(sb.state, 'ready');
    assert.equal(sb.labels.suite, name);
    assert.deepEqual(JSON.parse(JSON.stringify(sb)).id, sb.id, 'a handle serialises as its fields');
    assert.equal((await client.sandboxes.get(sb.id)).vault, sb.vault);
    assert.deepEqual((await client.sandboxes.list({ labels: { suite: name } })).map((s) => s.id), [sb.id]);

    const argv = await sb.exec(['printf', '%s|', 'a b', '$HOME', "'q'"]);
    assert.equal(argv.status, 'completed');
    assert.equal(argv.exitCode, 0);
    assert.equal(argv.stdout, "a b|$HOME|'q'|");

    const shell = await sb.exec('echo "$GREETING" from $(pwd); echo oops >&2; exit 3', { env: { GREETING: 'hi' } });
    assert.equal(shell.exitCode, 3, 'a non-zero exit is data');
    assert.match(shell.stdout, /^hi from /);
    assert.equal(shell.stderr, 'oops\n');

    const fed = await sb.exec(['sh', '-c', 'wc -c; cat'], { stdin: new Uint8Array([104, 105, 0, 255]) });
    assert.equal(fed.stdout.slice(0, 2), '4\n');
    assert.equal((await sb.exec('cat', { stdin: 'héllo' })).stdout, 'héllo');

    await assert.doesNotReject(sb.execOrThrow('true'));
    const failed = await sb.execOrThrow('echo nope >&2; exit 2').then(
      () => assert.fail('execOrThrow resolved'),
      (e: unknown) => e,
    );
    assert.ok(failed instanceof CommandExitError);
    assert.equal(failed.exitCode, 2);
    assert.equal(failed.stderr, 'nope\n');
    assert.equal(failed.result.status, 'completed');
    assert.match(failed.message, /exited with code 2: nope/);
    await assert.rejects(sb.exec('exit 1', { check: true }), CommandExitError);
    const slow = await sb.exec('sleep 5', { timeoutMs: 200 });
    assert.equal(slow.timedOut, true);
    await assert.rejects(sb.exec('sleep 5', { timeoutMs: 200, check: true }), (e) => e instanceof CommandExitError && e.result.timedOut && /timed out/.test(e.message));

    await sb.destroy();
    assert.equal(sb.state, 'destroyed');
    const gone = await sb.exec('true').catch((e: unknown) => e);
    assert.ok(isCorralApiError(gone, 'SANDBOX_STATE'), String(gone));
    assert.equal(gone.status, 409);
    client.close();
  });

  test(`${name}: background exec: output followed live, re-attached from an offset, stdin, kill, wait, list`, async () => {
    const client = make();
    const sb = await sandbox(client);
    const bg = await sb.exec('for i in 1 2 3; do echo line$i; echo err$i >&2; done; exit 4', { background: true });
    assert.match(bg.id, /^exec_/);
    assert.equal(bg.sandboxId, sb.id);
    const all = await collect(bg);
    assert.equal(all.at(-1)?.type, 'exit');
    assert.equal(text(all, 'stdout'), 'line1\nline2\nline3\n');
    assert.equal(text(all, 'stderr'), 'err1\nerr2\nerr3\n');
    const ended = await bg.wait();
    assert.equal(ended.state, 'completed');
    assert.equal(ended.exitCode, 4);
    assert.equal(bg.result?.exitCode, 4);
    await assert.rejects(bg.wait({ check: true }), (e) => e instanceof CommandExitError && e.exitCode === 4);
    // Re-attach from offsets: only the rest is replayed; follow false on an ended exec still ends with exit.
    const rest = await collect(bg.output({ from: { stdout: 12, stderr: 10 } }));
    assert.equal(text(rest, 'stdout'), 'line3\n');
    assert.equal(text(rest, 'stderr'), 'err3\n');
    const again = await client.execs.get(bg.id);
    assert.equal(text(await collect(again.output({ from: { stdout: 6 }, follow: false })), 'stdout'), 'line2\nline3\n');

    // stdin streamed until EOF, while another reader follows the output live.
    const cat = await sb.exec(['sh', '-c', 'echo ready; cat; echo eof-seen'], { background: true, openStdin: true });
    const live = collect(cat.output());
    const first = await collect(cat.output(), (f) => f.type === 'output');
    assert.equal(text(first, 'stdout'), 'ready\n');
    await Promise.all([cat.stdin.write('hello '), cat.stdin.write(new TextEncoder().encode('world\n'))]);
    await cat.stdin.end();
    const frames = await live;
    assert.equal(text(frames, 'stdout'), 'ready\nhello world\neof-seen\n');
    const exit = frames.at(-1);
    assert.ok(exit?.type === 'exit' && exit.exec.result?.exitCode === 0);
    const late = await cat.stdin.write('late').catch((e: unknown) => e);
    assert.ok(isCorralApiError(late, 'EXEC_STATE'), String(late));

    // A signal the command traps, then TERM for the whole tree.
    const trap = await sb.exec('trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.05; done', { background: true });
    await collect(trap, (f) => f.type === 'output');
    await trap.kill('USR1');
    assert.equal((await trap.wait()).exitCode, 7);
    const sleeper = await sb.exec('sleep 60', { background: true });
    const tooSoon = await sleeper.wait({ timeoutMs: 100 }).catch((e: unknown) => e);
    assert.ok(isCorralApiError(tooSoon, 'TIMEOUT'), String(tooSoon));
    assert.equal(tooSoon.status, null);
    assert.equal((await sleeper.info()).state, 'running');
    await sleeper.kill();
    const killed = await sleeper.wait();
    assert.equal(killed.exitCode, null);
    assert.ok(isCorralApiError(await sleeper.kill().catch((e: unknown) => e), 'EXEC_STATE'));

    const listed = await sb.execs.list();
    assert.deepEqual(listed.map((e) => e.id), [bg.id, cat.id, trap.id, sleeper.id]);
    assert.deepEqual((await sb.execs.list({ state: 'running' })).length, 0);
    await sb.destroy();
    client.close();
  });

  test(`${name}: streamed exec: frames as they come, ending with exit; openStdin; leaving the loop cancels it`, async () => {
    const client = make();
    const sb = await sandbox(client);
    const stream = sb.stream('echo one; echo two >&2; exit 5');
    const frames = await collect(stream);
    assert.deepEqual([frames[0]?.type, frames.at(-1)?.type], ['started', 'exit']);
    assert.equal(text(frames, 'stdout'), 'one\n');
    assert.equal(text(frames, 'stderr'), 'two\n');
    assert.equal(stream.record?.result?.exitCode, 5);
    assert.equal(stream.id, stream.record?.id);
    await assert.rejects(collect(stream), /read once/);

    const piped = sb.stream(['sh', '-c', 'read x; echo "got $x"'], { openStdin: true });
    const reading = collect(piped);
    await piped.stdin.write('it\n');
    await piped.stdin.end();
    assert.equal(text(await reading, 'stdout'), 'got it\n');

    const endless = sb.stream('echo tick; sleep 60');
    await collect(endless, (f) => f.type === 'output');
    const handle = await endless.handle();
    const ended = await handle.wait({ timeoutMs: 20_000 });
    assert.notEqual(ended.state, 'running', 'closing the stream cancelled the exec');
    assert.equal(ended.result?.exitCode, null);
    await sb.destroy();
    client.close();
  });
}

test('concurrent execs in one sandbox and across sandboxes', async () => {
  const client = daemon.owner;
  const boxes = await Promise.all([sandbox(client), sandbox(client), sandbox(client)]);
  const runs = boxes.flatMap((sb, b) => Array.from({ length: 4 }, (_, i) => sb.exec(['sh', '-c', `sleep 0.2; echo ${b}-${i}`]).then((r) => ({ r, want: `${b}-${i}\n` }))));
  const background = await Promise.all(boxes.map((sb, b) => sb.exec(`echo bg-${b}`, { background: true })));
  for (const { r, want } of await Promise.all(runs)) {
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, want);
  }
  const outputs = await Promise.all(background.map((h) => collect(h)));
  outputs.forEach((frames, b) => assert.equal(text(frames, 'stdout'), `bg-${b}\n`));
  for (const sb of boxes) assert.equal((await sb.execs.list()).length, 5, 'four collected and one background exec each');
  await Promise.all(boxes.map((sb) => sb.destroy()));
});

test('AbortSignal: a collected exec and an output stream stop with the signal; the exec is cancelled', async () => {
  const sb = await sandbox(daemon.owner);
  const ac = new AbortController();
  const running = sb.exec('sleep 30', { signal: ac.signal });
  setTimeout(() => ac.abort(), 300);
  await assert.rejects(running, (e: Error) => e.name === 'AbortError');
  // The daemon saw the client go and cancelled the command.
  const [rec] = await sb.execs.list();
  const ended = await (await daemon.owner.execs.get(rec!.id)).wait({ timeoutMs: 20_000 });
  assert.notEqual(ended.state, 'running');

  const reason = new Error('enough');
  const bg = await sb.exec('echo a; sleep 30', { background: true });
  const stop = new AbortController();
  const seen: ExecFrame[] = [];
  const reading = (async () => {
    for await (const f of bg.output({ signal: stop.signal })) {
      seen.push(f);
      if (f.type === 'output') stop.abort(reason);
    }
  })();
  await assert.rejects(reading, (e) => e === reason);
  assert.equal(text(seen, 'stdout'), 'a\n');
  assert.equal((await bg.info()).state, 'running', 'a background exec outlives its readers');
  await bg.kill();
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(daemon.owner.ping({ signal: aborted.signal }), (e: Error) => e.name === 'AbortError');
  await sb.destroy();
});

test('timeouts and unreachable daemons are typed errors', async () => {
  const sb = await sandbox(daemon.owner);
  const timedOut = await sb.exec('sleep 10', { requestTimeoutMs: 300 }).catch((e: unknown) => e);
  assert.ok(isCorralApiError(timedOut, 'TIMEOUT'), String(timedOut));
  assert.match(timedOut.message, /within 300 ms/);
  assert.deepEqual(timedOut.details, { timeoutMs: 300 });

  // The client's default applies to every call; a call's own timeoutMs wins.
  const hanging = (_url: string, init: RequestInit) => new Promise<Response>((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason)));
  const quick = BrowserCorral.connect({ url: 'http://127.0.0.1:9', fetch: hanging, timeoutMs: 100 });
  const viaDefault = await quick.ping().catch((e: unknown) => e);
  assert.ok(isCorralApiError(viaDefault, 'TIMEOUT'), String(viaDefault));
  assert.deepEqual(viaDefault.details, { timeoutMs: 100 });
  const viaCall = await quick.system({ timeoutMs: 150 }).catch((e: unknown) => e);
  assert.ok(isCorralApiError(viaCall, 'TIMEOUT'));
  assert.deepEqual(viaCall.details, { timeoutMs: 150 });

  const noSocket = connect({ socket: `${daemon.home}/missing.sock` });
  const down = await noSocket.ping().catch((e: unknown) => e);
  assert.ok(isCorralApiError(down, 'UNAVAILABLE'), String(down));
  assert.match(down.message, /missing\.sock/);
  assert.equal(down.status, null);
  const closedPort = await BrowserCorral.connect({ url: `http://127.0.0.1:${await freePort()}` }).ping().catch((e: unknown) => e);
  assert.ok(isCorralApiError(closedPort, 'UNAVAILABLE'), String(closedPort));
  assert.match(closedPort.message, /ECONNREFUSED/);
  assert.throws(() => BrowserCorral.connect({ url: 'localhost:8420' }), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  await sb.destroy();
});

test('error envelopes become CorralApiError with code, status, details and request id', async () => {
  const client = daemon.owner;
  const missing = await client.sandboxes.get(`sbx_${'0'.repeat(26)}`).catch((e: unknown) => e);
  assert.ok(isCorralApiError(missing, 'SANDBOX_NOT_FOUND'));
  assert.ok(isNotFound(missing));
  assert.equal(missing.status, 404);
  assert.match(missing.requestId ?? '', /^req_/);
  const malformed = await client.sandboxes.get('sbx_nope').catch((e: unknown) => e);
  assert.ok(isCorralApiError(malformed, ['INVALID_ARGUMENT', 'INVALID_PATH']));
  assert.equal(malformed.status, 400);
  assert.deepEqual(malformed.details, { sandbox: 'sbx_nope' });
  // A name is looked up (connect by name): one nobody has is not found.
  assert.ok(isCorralApiError(await client.sandboxes.get('nope').catch((e: unknown) => e), 'SANDBOX_NOT_FOUND'));
  const badSpec = await client.sandboxes.create({ ttlSeconds: -1 }).catch((e: unknown) => e);
  assert.ok(isCorralApiError(badSpec, 'INVALID_ARGUMENT'));
  assert.ok(Array.isArray(badSpec.details.issues));
  const noExec = await client.execs.get(`exec_${'0'.repeat(26)}`).catch((e: unknown) => e);
  assert.ok(isCorralApiError(noExec, 'EXEC_NOT_FOUND'));

  // Something that is not a Corral daemon answers: BAD_RESPONSE, not a crash.
  const impostor = BrowserCorral.connect({ url: 'http://example.invalid', fetch: async () => new Response('<html>bad gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } }) });
  const bad = await impostor.ping().catch((e: unknown) => e);
  assert.ok(isCorralApiError(bad, 'BAD_RESPONSE'));
  assert.equal(bad.status, 502);
  const notJson = BrowserCorral.connect({ url: 'http://example.invalid', fetch: async () => new Response('hello', { status: 200 }) });
  assert.ok(isCorralApiError(await notJson.ping().catch((e: unknown) => e), 'BAD_RESPONSE'));
});

test('a dropped output stream is re-attached once with Last-Event-ID: nothing is lost or repeated', async () => {
  const seen: { url: string; lastEventId: string | null }[] = [];
  // Cuts the first output stream after its second event, as a dropped connection would.
  const flaky = async (url: string, init: RequestInit): Promise<Response> => {
    const res = await fetch(url, init);
    seen.push({ url, lastEventId: new Headers(init.headers).get('last-event-id') });
    if (!url.includes('/output') || seen.length > 1) return res;
    // Passes the first two events through, then fails the body mid-stream.
    const reader = res.body!.getReader();
    let text = '';
    const cut = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        text += new TextDecoder().decode(value);
        const first = text.indexOf('\n\n');
        const second = first < 0 ? -1 : text.indexOf('\n\n', first + 2);
        if (second < 0) return;
        controller.enqueue(new TextEncoder().encode(text.slice(0, second + 2)));
        await reader.cancel();
        controller.error(new TypeError('terminated'));
      },
    });
    return new Response(cut, { status: res.status, headers: res.headers });
  };
  const client = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read', 'sandboxes:write', 'exec']), fetch: flaky });
  const sb = await sandbox(client);
  const bg = await sb.exec('for i in 1 2 3 4 5; do echo line$i; sleep 0.05; done', { background: true });
  await bg.wait();
  seen.length = 0;
  const frames = await collect(bg.output());
  assert.equal(text(frames, 'stdout'), 'line1\nline2\nline3\nline4\nline5\n');
  assert.equal(frames.filter((f) => f.type === 'exit').length, 1);
  assert.equal(seen.length, 2);
  assert.match(seen[1]!.lastEventId ?? '', /^\d+,0$/);
  await sb.destroy();
});
