import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { execFrameSchema, execListSchema, execRecordSchema, sandboxSchema, type ExecFrameWire } from '../../src/protocol/api-schemas.ts';
import { openCorral } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

function setup(backend = 'namespace') {
  const corral = openCorral();
  corral.vaults.create('src');
  const app = createApi({ corral, logger: quiet, version: '0.0.0' });
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.request(path, { method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } : { headers }) });
  const sandbox = async () => sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { vault: 'src', backend, policy: 'permissive' })).json());
  return { corral, app, call, sandbox };
}

/** Reads an SSE body to its end (or until `stop` says so): the frames with their event names and ids. */
async function sse(res: Response, stop: (f: ExecFrameWire) => boolean = () => false): Promise<{ event: string; id: string; frame: ExecFrameWire }[]> {
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const out: { event: string; id: string; frame: ExecFrameWire }[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let at: number;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const fields = Object.fromEntries(block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
      const frame = execFrameSchema.parse(JSON.parse(fields.data!));
      assert.equal(fields.event, frame.type);
      out.push({ event: fields.event!, id: fields.id!, frame });
      if (stop(frame)) {
        await reader.cancel();
        return out;
      }
    }
  }
  return out;
}

const text = (frames: { frame: ExecFrameWire }[], stream: 'stdout' | 'stderr') =>
  frames.map((f) => f.frame).filter((f) => f.type === 'output' && f.stream === stream).map((f) => (f.type === 'output' ? Buffer.from(f.data, f.encoding) : Buffer.alloc(0))).reduce((a, b) => Buffer.concat([a, b]), Buffer.alloc(0)).toString();

test('background exec: 202 at once, output replayed from any offset, wait, the result kept, listed', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox();
  const res = await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'for i in 1 2 3; do echo line$i; echo err$i >&2; done; echo done > f.txt; exit 4', background: true });
  assert.equal(res.status, 202);
  const started = execRecordSchema.parse(await res.json());
  assert.equal(started.state, 'running');
  assert.equal(started.background, true);
  assert.equal(started.result, null);
  assert.equal(res.headers.get('location'), `/v1/execs/${started.id}`);

  const ended = execRecordSchema.parse(await (await call('POST', `/v1/execs/${started.id}/wait`, { timeoutMs: 30_000 })).json());
  assert.equal(ended.state, 'completed');
  assert.equal(ended.exitCode, 4);
  assert.equal(ended.result?.exitCode, 4);
  assert.deepEqual(ended.result?.changes?.added.map((c) => c.path), ['/f.txt']);
  assert.equal(ended.stdoutBytes, 18);
  assert.equal(ended.stderrBytes, 15);
  assert.ok(ended.startedAt && ended.finishedAt);

  const all = await sse(await call('GET', `/v1/execs/${started.id}/output`));
  assert.equal(text(all, 'stdout'), 'line1\nline2\nline3\n');
  assert.equal(text(all, 'stderr'), 'err1\nerr2\nerr3\n');
  const last = all.at(-1)!;
  assert.equal(last.frame.type, 'exit');
  assert.equal(last.id, '18,15');
  // From an offset, by query or by Last-Event-ID: only the rest.
  assert.equal(text(await sse(await call('GET', `/v1/execs/${started.id}/output?stdout=12&stderr=15`)), 'stdout'), 'line3\n');
  const resumed = await sse(await call('GET', `/v1/execs/${started.id}/output`, undefined, { 'last-event-id': '6,10' }));
  assert.equal(text(resumed, 'stdout'), 'line2\nline3\n');
  assert.equal(text(resumed, 'stderr'), 'err3\n');

  const list = execListSchema.parse(await (await call('GET', `/v1/sandboxes/${sb.id}/execs`)).json());
  assert.deepEqual(list.execs.map((e) => e.id), [started.id]);
  assert.equal(execListSchema.parse(await (await call('GET', `/v1/sandboxes/${sb.id}/execs?state=running`)).json()).execs.length, 0);
  await errorOf(await call('GET', `/v1/sandboxes/${sb.id}/execs?state=zombie`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/execs/${started.id}/output?stdout=-1`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `/v1/execs/${started.id}/output?follow=yes`), 400, 'INVALID_ARGUMENT');
});

test('live tail: a watcher attached mid-run gets the earlier bytes replayed, then the rest live, then exit', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox();
  const bg = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo first; read x; echo "second $x"', background: true, openStdin: true })).json());
  const early = await sse(await call('GET', `/v1/execs/${bg.id}/output`), (f) => f.type === 'output');
  assert.equal(text(early, 'stdout'), 'first\n');
  const tail = Promise.resolve(call('GET', `/v1/execs/${bg.id}/output`)).then((r) => sse(r));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await call('POST', `/v1/execs/${bg.id}/stdin?eof=true`, 'go\n', { 'content-type': 'application/octet-stream' })).status, 204);
  const frames = await tail;
  assert.equal(text(frames, 'stdout'), 'first\nsecond go\n');
  assert.equal(frames.at(-1)!.frame.type, 'exit');
  // Not following: what exists now, and the exit frame of an ended exec.
  const now = await sse(await call('GET', `/v1/execs/${bg.id}/output?follow=false&stdout=6`));
  assert.equal(text(now, 'stdout'), 'second go\n');
});

test('kill: TERM ends the tree; another signal reaches the command; stdin streams until EOF', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox();
  const trap = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.05; done', background: true })).json());
  await sse(await call('GET', `/v1/execs/${trap.id}/output`), (f) => f.type === 'output');
  assert.equal((await call('POST', `/v1/execs/${trap.id}/kill`, { signal: 'SIGUSR1' })).status, 200);
  const afterUsr1 = execRecordSchema.parse(await (await call('POST', `/v1/execs/${trap.id}/wait`, {})).json());
  assert.equal(afterUsr1.exitCode, 7);
  assert.match(text(await sse(await call('GET', `/v1/execs/${trap.id}/output`)), 'stdout'), /got-usr1/);
  await errorOf(await call('POST', `/v1/execs/${trap.id}/kill`, {}), 409, 'EXEC_STATE');

  const sleeper = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'sleep 60 & sleep 60; echo never', background: true })).json());
  await errorOf(await call('POST', `/v1/execs/${sleeper.id}/kill`, { signal: 'NOPE' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `/v1/execs/${sleeper.id}/kill`, { signal: 99 }), 400, 'INVALID_ARGUMENT');
  const waiting = execRecordSchema.parse(await (await call('POST', `/v1/execs/${sleeper.id}/wait`, { timeoutMs: 50 })).json());
  assert.equal(waiting.state, 'running');
  await call('POST', `/v1/execs/${sleeper.id}/kill`, { signal: 'TERM' });
  const killed = execRecordSchema.parse(await (await call('POST', `/v1/execs/${sleeper.id}/wait`, {})).json());
  assert.equal(killed.state, 'completed');
  assert.equal(killed.result?.exitCode, null);
  assert.equal(text(await sse(await call('GET', `/v1/execs/${sleeper.id}/output`)), 'stdout'), '');

  const cat = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['sh', '-c', 'cat; echo eof-seen'], background: true, openStdin: true })).json());
  const post = (q: string, body: string) => call('POST', `/v1/execs/${cat.id}/stdin${q}`, body, { 'content-type': 'application/octet-stream' });
  assert.equal((await post('', 'hello ')).status, 204);
  assert.equal((await post('?eof=true', 'world\n')).status, 204);
  await errorOf(await post('', 'late'), 409, 'EXEC_STATE');
  const catDone = execRecordSchema.parse(await (await call('POST', `/v1/execs/${cat.id}/wait`, {})).json());
  assert.equal(catDone.result?.stdout, 'hello world\neof-seen\n');
  await errorOf(await call('POST', `/v1/execs/${trap.id}/stdin`, 'x', { 'content-type': 'application/octet-stream' }), 409, 'EXEC_STATE');
});

test('streamed exec: Accept text/event-stream gives started, output and exit frames; a client that goes cancels it', async () => {
  const { call, sandbox, corral } = setup();
  const sb = await sandbox();
  const frames = await sse(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo out; printf "\\377\\376" ; echo err >&2' }, { accept: 'text/event-stream' }));
  assert.equal(frames[0]!.frame.type, 'started');
  assert.equal(text(frames, 'stderr'), 'err\n');
  const binary = frames.map((f) => f.frame).filter((f) => f.type === 'output' && f.stream === 'stdout');
  assert.equal(Buffer.concat(binary.map((f) => (f.type === 'output' ? Buffer.from(f.data, f.encoding) : Buffer.alloc(0)))).toString('latin1'), 'out\n\xff\xfe');
  const exit = frames.at(-1)!.frame;
  assert.equal(exit.type, 'exit');
  assert.equal(exit.type === 'exit' && exit.exec.result?.status, 'completed');

  const gone = await sse(await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'echo go; sleep 60' }, { accept: 'text/event-stream' }), (f) => f.type === 'output');
  const id = gone[0]!.frame.type === 'started' ? gone[0]!.frame.exec : '';
  const info = await corral.execs.wait(id, { timeoutMs: 20_000 });
  assert.equal(info.state, 'completed');
  assert.equal(info.result?.signal !== null || info.result?.exitCode !== 0, true);
  assert.ok((info.result?.durationMs ?? 99_999) < 20_000, 'cancelled, not run to its end');
});

test('a slow reader of a fast producer: the daemon holds a page, not the whole output; old bytes come as a gap', async () => {
  const corral = openCorral();
  corral.vaults.create('src');
  const sb = corral.sandboxes.create({ vault: 'src', backend: 'host', policy: 'permissive' });
  const { ExecOutputStore } = await import('../../src/services/exec-output-store.ts');
  const { ExecSessions } = await import('../../src/services/exec-sessions.ts');
  const execs = new ExecSessions({ store: corral.store, sandboxes: corral.sandboxes, exec: corral.exec, events: corral.events, output: new ExecOutputStore(corral.store.db, { maxBytes: 1 << 20 }) });
  const { info, done } = execs.start(sb.id, { shell: 'head -c 8000000 /dev/zero', background: true });
  await done;
  const frames = [];
  for await (const f of execs.frames(info.id, {})) frames.push(f);
  const gap = frames.find((f) => f.type === 'gap');
  assert.ok(gap && gap.type === 'gap' && gap.from === 0 && gap.to >= 8_000_000 - (1 << 20) - 300 * 1024, JSON.stringify(gap));
  const bytes = frames.reduce((n, f) => n + (f.type === 'output' ? f.data.length : 0), 0);
  assert.equal(bytes, 8_000_000 - (gap.type === 'gap' ? gap.to : 0));
  assert.equal(frames.at(-1)!.type, 'exit');
  const kept = corral.store.db.get<{ n: number }>('SELECT sum(length(data)) AS n FROM exec_output WHERE exec_id = ?', info.id)!.n;
  assert.ok(kept <= (1 << 20) + 300 * 1024, `kept ${kept}`);
});

test('metrics: streamed output bytes, execs started and finished, policy decisions', async () => {
  const corral = openCorral();
  corral.vaults.create('src');
  const { CorralMetrics, sandboxStateCounts } = await import('../../src/api/metrics.ts');
  const metrics = new CorralMetrics({ events: corral.events, sandboxCounts: sandboxStateCounts(corral.store.db), startedAt: Date.now() });
  try {
    const app = createApi({ corral, logger: quiet, version: '0.0.0', metrics });
    const sb = corral.sandboxes.create({ vault: 'src', backend: 'host', policy: 'permissive' });
    const res = await app.request(`/v1/sandboxes/${sb.id}/exec`, { method: 'POST', body: JSON.stringify({ shell: 'printf 12345; printf ab >&2' }), headers: { 'content-type': 'application/json', accept: 'text/event-stream' } });
    await sse(res);
    const text = await (await app.request('/metrics')).text();
    assert.match(text, /corral_stream_bytes_total\{stream="stdout"\} 5\b/);
    assert.match(text, /corral_stream_bytes_total\{stream="stderr"\} 2\b/);
    assert.match(text, /corral_execs_started_total 1\b/);
    assert.match(text, /corral_policy_decisions_total\{action="allow"\} 1\b/);
  } finally {
    metrics.close();
  }
});

test('a held exec waits for its slow reader: every byte arrives, none dropped, the daemon holds little', async () => {
  const corral = openCorral();
  corral.vaults.create('src');
  const sb = corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'permissive' });
  const { ExecOutputStore } = await import('../../src/services/exec-output-store.ts');
  const { ExecSessions } = await import('../../src/services/exec-sessions.ts');
  const execs = new ExecSessions({ store: corral.store, sandboxes: corral.sandboxes, exec: corral.exec, events: corral.events, output: new ExecOutputStore(corral.store.db, { maxBytes: 4 << 20 }) });
  const total = 24 * 1024 * 1024;
  const { info, done } = execs.start(sb.id, { shell: `head -c ${total} /dev/zero`, holdForReader: true });
  let bytes = 0;
  let gaps = 0;
  let n = 0;
  for await (const f of execs.frames(info.id, {}, { hold: true })) {
    if (f.type === 'gap') gaps++;
    if (f.type === 'output') {
      bytes += f.data.length;
      // A slow reader: a pause every 2 MiB or so.
      if (++n % 32 === 0) await new Promise((r) => setTimeout(r, 30));
    }
  }
  assert.equal(gaps, 0);
  assert.equal(bytes, total);
  assert.equal((await done).result?.status, 'completed');
});

test('approvals over the API: a pending exec, approved, then resumed by POST exec {resume} in its sandbox, once; or waited for with waitForApprovalMs', async () => {
  const corral = openCorral();
  corral.vaults.create('src');
  const app = createApi({ corral, logger: quiet, version: '0.0.0' });
  const call = (method: string, path: string, body?: unknown) => app.request(path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  const sb = corral.sandboxes.create({ vault: 'src', backend: 'namespace', policy: 'workstation' });
  const pending: any = await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'curl -s https://example.com -o page.html' })).json();
  assert.equal(pending.status, 'pending');
  const id = pending.approval.id as string;
  assert.equal((await call('POST', `/v1/approvals/${id}/approve`, { reason: 'ok' })).status, 200);
  const resumed: any = await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { resume: id })).json();
  assert.notEqual(resumed.status, 'pending');
  assert.equal(resumed.command.shell, 'curl -s https://example.com -o page.html');
  assert.ok(corral.execs.list(sb.id).some((e) => e.id === resumed.id), 'listed among the sandbox execs');
  const again: any = await (await call('POST', `/v1/sandboxes/${sb.id}/exec`, { resume: id })).json();
  assert.equal(again.status, 'failed');
  assert.match(again.error.code, /APPROVAL/);

  // waitForApprovalMs: the request waits for the person's answer and runs the command once approved.
  const waiting = call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'eval echo waited', waitForApprovalMs: 30_000 });
  let asked: string | undefined;
  for (let i = 0; i < 500 && !asked; i++) {
    await new Promise((r) => setTimeout(r, 10));
    asked = corral.approvals.list({ state: 'pending' }).find((a) => a.vault === sb.vault)?.id;
  }
  assert.ok(asked, 'the approval is pending while the request waits');
  assert.equal((await call('POST', `/v1/approvals/${asked}/approve`, {})).status, 200);
  const ran: any = await (await waiting).json();
  assert.equal(ran.status, 'completed', JSON.stringify(ran).slice(0, 300));
  assert.equal(Buffer.from(ran.stdout, ran.encoding === 'base64' ? 'base64' : 'utf8').toString(), 'waited\n');
  // Denied while it waits: the envelope says so.
  const refused = call('POST', `/v1/sandboxes/${sb.id}/exec`, { shell: 'eval echo never', waitForApprovalMs: 30_000 });
  let second: string | undefined;
  for (let i = 0; i < 500 && !second; i++) {
    await new Promise((r) => setTimeout(r, 10));
    second = corral.approvals.list({ state: 'pending' }).find((a) => a.vault === sb.vault)?.id;
  }
  assert.equal((await call('POST', `/v1/approvals/${second}/deny`, { reason: 'no' })).status, 200);
  const denied: any = await (await refused).json();
  assert.equal(denied.status, 'denied', JSON.stringify(denied).slice(0, 300));
});
