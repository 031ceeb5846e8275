// The SSE output stream as bytes on the wire: every output event is exactly the JSON that
// JSON.stringify gives (the fast paths for ASCII change nothing a client can see), its offsets and
// ids are exact, and a client that resumes with Last-Event-ID mid-stream misses and repeats nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createApi } from '../../src/api/api-app.ts';
import { execFrameSchema, execRecordSchema, sandboxSchema, type ExecFrameWire } from '../../src/protocol/api-schemas.ts';
import { openCorral } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

function setup() {
  const corral = openCorral();
  corral.vaults.create('src');
  const app = createApi({ corral, logger: quiet, version: '0.0.0' });
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.request(path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } : { headers }) });
  const sandbox = async () => sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { vault: 'src', backend: 'host', policy: 'permissive' })).json()).id;
  return { corral, call, sandbox };
}

interface Event {
  event: string;
  id: string;
  /** The data line as sent. */
  data: string;
  frame: ExecFrameWire;
}

/** Reads SSE events until the body ends or `stop` says so (then the body is cancelled). */
async function events(res: Response, stop: (e: Event, all: Event[]) => boolean = () => false): Promise<Event[]> {
  assert.equal(res.status, 200);
  const out: Event[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return out;
    buf += value;
    let at: number;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const lines = block.split('\n');
      assert.equal(lines.length, 3, block.slice(0, 200));
      const [event, id, data] = lines.map((l) => l.slice(l.indexOf(': ') + 2)) as [string, string, string];
      const e = { event, id, data, frame: execFrameSchema.parse(JSON.parse(data)) };
      out.push(e);
      if (stop(e, out)) {
        await reader.cancel();
        return out;
      }
    }
  }
}

/** The bytes of one stream's output frames, checking that each frame starts where the last ended (from `from`). */
function bytesOf(list: Event[], stream: 'stdout' | 'stderr', from = 0): Buffer {
  const parts: Buffer[] = [];
  let at = from;
  for (const { frame } of list) {
    if (frame.type !== 'output' || frame.stream !== stream) continue;
    assert.equal(frame.offset, at, `${stream} frame at ${frame.offset}, expected ${at}`);
    const data = Buffer.from(frame.data, frame.encoding);
    parts.push(data);
    at += data.length;
  }
  return Buffer.concat(parts);
}

/** Each event's id is the offsets reached after it. */
function checkIds(list: Event[], from = { stdout: 0, stderr: 0 }): void {
  const at = { ...from };
  for (const e of list) {
    if (e.frame.type === 'output') at[e.frame.stream] = e.frame.offset + Buffer.from(e.frame.data, e.frame.encoding).length;
    if (e.frame.type === 'gap') at[e.frame.stream] = e.frame.to;
    assert.equal(e.id, `${at.stdout},${at.stderr}`);
  }
}

test('output events are byte for byte JSON.stringify of the frame: plain ASCII, escapes, UTF-8, binary, a large ASCII run', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox();
  const cases: { shell: string; stdout: Buffer; stderr?: Buffer; encoding: 'utf8' | 'base64' }[] = [
    { shell: "printf 'plain ascii, no escapes ~!@#$%%^&*()_+{}|:<>?'", stdout: Buffer.from('plain ascii, no escapes ~!@#$%^&*()_+{}|:<>?'), encoding: 'utf8' },
    { shell: "printf 'quote \" backslash \\\\ tab \\t newline \\n bell \\a del \\177 nul \\000 end'", stdout: Buffer.from('quote " backslash \\ tab \t newline \n bell \x07 del \x7f nul \0 end'), encoding: 'utf8' },
    { shell: "printf 'h\\303\\251llo \\342\\234\\223'; printf 'err \"x\"' >&2", stdout: Buffer.from('héllo ✓'), stderr: Buffer.from('err "x"'), encoding: 'utf8' },
    { shell: "printf '\\377\\376binary'", stdout: Buffer.from([0xff, 0xfe, ...Buffer.from('binary')]), encoding: 'base64' },
    { shell: "head -c 300000 /dev/zero | tr '\\0' 'x'", stdout: Buffer.alloc(300000, 'x'), encoding: 'utf8' },
  ];
  for (const c of cases) {
    const list = await events(await call('POST', `/v1/sandboxes/${sb}/exec`, { shell: c.shell }, { accept: 'text/event-stream' }));
    assert.equal(list.at(-1)!.frame.type, 'exit', c.shell);
    for (const e of list) {
      assert.equal(e.event, e.frame.type);
      // Canonical: what JSON.stringify makes of the parsed frame, with the same key order.
      assert.equal(e.data, JSON.stringify(JSON.parse(e.data)), c.shell);
      if (e.frame.type === 'output') assert.deepEqual(Object.keys(e.frame), ['type', 'stream', 'offset', 'atUs', 'data', 'encoding']);
    }
    checkIds(list);
    assert.deepEqual(bytesOf(list, 'stdout'), c.stdout, c.shell);
    assert.deepEqual(bytesOf(list, 'stderr'), c.stderr ?? Buffer.alloc(0), c.shell);
    const first = list.find((e) => e.frame.type === 'output' && e.frame.stream === 'stdout')!.frame;
    assert.equal(first.type === 'output' && first.encoding, c.encoding, c.shell);
  }
});

test('Last-Event-ID mid-stream: the replay resumes exactly after the last event seen, for escaped and plain output alike', async () => {
  const { call, sandbox } = setup();
  const sb = await sandbox();
  const lines = Buffer.from(Array.from({ length: 300_000 }, (_, i) => `${i + 1}\n`).join(''));
  const plain = Buffer.alloc(3_000_000, 'y');
  for (const [shell, expected] of [['seq 1 300000', lines], ["head -c 3000000 /dev/zero | tr '\\0' 'y'; printf tail >&2", plain]] as const) {
    const started = execRecordSchema.parse(await (await call('POST', `/v1/sandboxes/${sb}/exec`, { shell, background: true })).json());
    await call('POST', `/v1/execs/${started.id}/wait`, { timeoutMs: 30_000 });
    const whole = await events(await call('GET', `/v1/execs/${started.id}/output?follow=false`));
    checkIds(whole);
    assert.deepEqual(bytesOf(whole, 'stdout'), expected);
    for (const cutAfter of [1, 3, Math.floor(whole.length / 2)]) {
      // A client that goes after `cutAfter` events, then comes back with the last id it saw.
      const head = await events(await call('GET', `/v1/execs/${started.id}/output`), (_e, all) => all.length === cutAfter);
      const last = head.at(-1)!.id;
      const [stdout, stderr] = last.split(',').map(Number) as [number, number];
      const rest = await events(await call('GET', `/v1/execs/${started.id}/output`, undefined, { 'last-event-id': last }));
      assert.equal(rest.at(-1)!.frame.type, 'exit');
      checkIds(rest, { stdout, stderr });
      assert.deepEqual(Buffer.concat([bytesOf(head, 'stdout'), bytesOf(rest, 'stdout', stdout)]), expected, `${shell} cut after ${cutAfter}`);
      assert.equal(Buffer.concat([bytesOf(head, 'stderr'), bytesOf(rest, 'stderr', stderr)]).toString(), shell.endsWith('>&2') ? 'tail' : '');
    }
  }
});

test('a fast streamed exec: every byte once, at exact offsets, the output kept after it (written beside the stream)', async () => {
  const { corral, call, sandbox } = setup();
  const sb = await sandbox();
  const total = 24 * 1024 * 1024;
  const list = await events(await call('POST', `/v1/sandboxes/${sb}/exec`, { shell: `head -c ${total} /dev/zero | tr '\\0' 'z'` }, { accept: 'text/event-stream' }));
  const exit = list.at(-1)!.frame;
  assert.equal(exit.type, 'exit');
  checkIds(list);
  const out = bytesOf(list, 'stdout');
  assert.equal(out.length, total);
  assert.ok(out.every((b) => b === 0x7a));
  // The frames carried every byte: the envelope in the exit frame keeps only 1 MiB of head and tail.
  const result = exit.type === 'exit' ? exit.exec.result! : null;
  assert.equal(result?.truncated, true);
  assert.ok(result!.stdout.length < 1.1 * 1024 * 1024, `${result!.stdout.length}`);
  assert.equal(exit.type === 'exit' && exit.exec.stdoutBytes, total);
  // The last 16 MiB are stored: a replay from the start begins with a gap, then the kept bytes.
  const replay = await events(await call('GET', `/v1/execs/${exit.type === 'exit' ? exit.exec.id : ''}/output?follow=false`));
  const gap = replay[0]!.frame;
  assert.ok(gap.type === 'gap' && gap.from === 0 && gap.to > 0 && gap.to <= total - 16 * 1024 * 1024, JSON.stringify(gap));
  assert.equal(bytesOf(replay, 'stdout', gap.to).length, total - gap.to);
  const kept = corral.store.db.get<{ n: number }>('SELECT sum(size) AS n FROM exec_output WHERE exec_id = ?', exit.type === 'exit' ? exit.exec.id : '')!.n;
  assert.equal(kept, total - gap.to);
});
