import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSse, type SseEvent } from '../../src/sdk/sse-reader.ts';
import { decodeFrame, parseEventId } from '../../src/sdk/exec-frames.ts';
import { base64Decode, base64Encode } from '../../src/sdk/sdk-bytes.ts';

const enc = new TextEncoder();

/** A body that delivers `parts` as separate chunks (strings as UTF-8). */
function body(parts: (string | Uint8Array)[], onCancel?: () => void): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      const p = parts[i++];
      if (p === undefined) return c.close();
      c.enqueue(typeof p === 'string' ? enc.encode(p) : p);
    },
    cancel() {
      onCancel?.();
    },
  });
}

async function all(stream: ReadableStream<Uint8Array>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of readSse(stream)) out.push(e);
  return out;
}

test('events: names, multi-line data, ids carried over, comments, CRLF, fields without a space or value', async () => {
  const events = await all(body([': hello\n\nevent: a\nid: 1,2\ndata: x\ndata:  y\n\n', 'data: no name\r\n\r\nevent:b\ndata\n\nid\ndata: z\n\n']));
  assert.deepEqual(events, [
    { event: 'a', data: 'x\n y', id: '1,2' },
    { event: 'message', data: 'no name', id: '1,2' },
    { event: 'b', data: '', id: '1,2' },
    { event: 'message', data: 'z', id: '' },
  ]);
});

test('an event split anywhere (inside a line, a UTF-8 character, the blank line) comes out whole; a trailing partial event is dropped', async () => {
  const text = 'event: output\nid: 5,0\ndata: {"t":"héllo wörld"}\n\n';
  const bytes = enc.encode(text);
  for (let cut = 1; cut < bytes.length; cut++) {
    const events = await all(body([bytes.subarray(0, cut), bytes.subarray(cut)]));
    assert.deepEqual(events, [{ event: 'output', data: '{"t":"héllo wörld"}', id: '5,0' }], `cut at ${cut}`);
  }
  const oneByteAtATime = await all(body([...bytes].map((b) => new Uint8Array([b]))));
  assert.equal(oneByteAtATime.length, 1);
  assert.deepEqual(await all(body(['data: done\n\ndata: never finished\n'])), [{ event: 'message', data: 'done', id: null }]);
  const long = 'x'.repeat(200_000);
  const chunks = ['data: ', ...long.match(/.{1,1000}/g)!, '\n\n'];
  assert.equal((await all(body(chunks)))[0]?.data, long);
});

test('leaving early cancels the body', async () => {
  let cancelled = false;
  for await (const e of readSse(body(['data: 1\n\n', 'data: 2\n\n', 'data: 3\n\n'], () => (cancelled = true)))) {
    assert.equal(e.data, '1');
    break;
  }
  assert.equal(cancelled, true);
});

test('frames decode lazily to bytes and text; event ids parse as offsets', () => {
  const utf8 = decodeFrame(JSON.stringify({ type: 'output', stream: 'stdout', offset: 3, atUs: 1, data: 'hé', encoding: 'utf8' }));
  assert.ok(utf8?.type === 'output');
  assert.equal(utf8.text, 'hé');
  assert.deepEqual([...utf8.data], [104, 0xc3, 0xa9]);
  const raw = new Uint8Array([0, 255, 128, 10]);
  const b64 = decodeFrame(JSON.stringify({ type: 'output', stream: 'stderr', offset: 0, atUs: 1, data: base64Encode(raw), encoding: 'base64' }));
  assert.ok(b64?.type === 'output');
  assert.deepEqual([...b64.data], [...raw]);
  assert.equal(decodeFrame(JSON.stringify({ type: 'future-kind' })), null);
  assert.deepEqual(parseEventId('18,15'), { stdout: 18, stderr: 15 });
  assert.equal(parseEventId('x'), null);
  assert.equal(parseEventId(null), null);
  const big = new Uint8Array(100_000).map((_, i) => i % 256);
  assert.deepEqual(base64Decode(base64Encode(big)), big);
  assert.equal(base64Encode(enc.encode('hi')), 'aGk=');
});

test('base64 without the platform codec (older browsers) gives the same bytes', () => {
  const proto = Uint8Array.prototype as unknown as Record<string, unknown>;
  const ctor = Uint8Array as unknown as Record<string, unknown>;
  const saved = { to: proto.toBase64, from: ctor.fromBase64 };
  delete proto.toBase64;
  delete ctor.fromBase64;
  try {
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);
    const text = base64Encode(bytes);
    assert.equal(text, Buffer.from(bytes).toString('base64'));
    assert.deepEqual(base64Decode(text), bytes);
  } finally {
    proto.toBase64 = saved.to;
    ctor.fromBase64 = saved.from;
  }
});
