import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Corral as BrowserCorral, isCorralApiError, type FetchLike, type StreamEvent } from '../../src/sdk/index.ts';
import { startTestDaemon } from './sdk-daemon.ts';

const daemon = await startTestDaemon();
const SCOPES = ['sandboxes:read', 'sandboxes:write', 'exec', 'files'] as const;

async function collect(events: AsyncIterable<StreamEvent>, stop: (e: StreamEvent) => boolean = () => false): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of events) {
    out.push(e);
    if (stop(e)) break;
  }
  return out;
}

test('checkpoints: save, list, restore (with and without running execs), delete; typed errors', { timeout: 30_000 }, async () => {
  const sb = await daemon.owner.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  await sb.files.write('/a.txt', 'one');
  const base = await sb.checkpoints.save({ name: 'base', message: 'the first' });
  assert.equal(base.name, 'base');
  assert.equal(base.message, 'the first');
  assert.match(base.commit, /\S/);
  await assert.rejects(sb.checkpoints.save({ name: 'base' }), (e) => isCorralApiError(e, 'CHECKPOINT_EXISTS'));
  await assert.rejects(sb.checkpoints.save({ name: '../x' }), (e) => isCorralApiError(e) && e.status === 400);
  const auto = await sb.checkpoints.save();
  assert.match(auto.name, /^cp-/);
  assert.deepEqual((await sb.checkpoints.list()).map((c) => c.name), ['base', auto.name]);

  await sb.files.write('/a.txt', 'two');
  const restored = await sb.checkpoints.restore('base');
  assert.equal(restored.checkpoint, 'base');
  assert.equal(restored.sandbox, sb.id);
  assert.equal(restored.restored, base.commit);
  assert.notEqual(restored.previous, restored.commit);
  assert.deepEqual(restored.cancelled, []);
  assert.equal(await sb.files.readText('/a.txt'), 'one');

  const running = await sb.exec('sleep 30', { background: true });
  await assert.rejects(sb.checkpoints.restore('base'), (e) => isCorralApiError(e, 'SANDBOX_STATE') && Array.isArray(e.details.execs));
  const forced = await sb.checkpoints.restore('base', { cancelExecs: true });
  assert.deepEqual(forced.cancelled, [running.id]);
  assert.notEqual((await running.wait()).state, 'running');

  assert.equal((await sb.checkpoints.delete('base')).name, 'base');
  assert.deepEqual((await sb.checkpoints.list()).map((c) => c.name), [auto.name]);
  await assert.rejects(sb.checkpoints.restore('base'), (e) => isCorralApiError(e, 'CHECKPOINT_NOT_FOUND'));
  await assert.rejects(sb.checkpoints.delete('base'), (e) => isCorralApiError(e, 'CHECKPOINT_NOT_FOUND'));
  await assert.rejects(sb.checkpoints.delete(''), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  await sb.destroy();
});

test('extend, pause and resume (execs refused while paused, a running one stopped and continued); events seen in order', { timeout: 30_000 }, async () => {
  const client = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key([...SCOPES]) });
  const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const events = sb.events();
  await events.ready;
  const checkpoints = sb.events({ types: ['checkpointed'] });
  await checkpoints.ready;

  const before = Date.now();
  assert.equal(await sb.extend(3600), sb);
  const expires = Date.parse(sb.expiresAt!);
  assert.ok(expires >= before + 3_590_000 && expires <= Date.now() + 3_610_000, sb.expiresAt!);
  await assert.rejects(sb.extend(0), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));

  const ticker = await sb.exec('for i in $(seq 1 30); do echo $i; sleep 0.02; done', { background: true });
  assert.equal((await sb.pause()).state, 'paused');
  assert.equal((await sb.pause()).state, 'paused', 'idempotent');
  await assert.rejects(sb.exec('true'), (e) => isCorralApiError(e, 'SANDBOX_STATE'));
  assert.equal((await client.sandboxes.get(sb.id)).state, 'paused');
  assert.equal((await sb.resume()).state, 'ready');
  assert.equal((await ticker.wait()).exitCode, 0, 'the stopped exec continued to its end');
  assert.equal((await sb.exec('echo ok')).stdout, 'ok\n');
  await sb.checkpoints.save({ name: 'c1' });
  await sb.destroy();

  const seen = await collect(events);
  const types = seen.map((e) => e.type);
  assert.deepEqual(types, ['exec.started', 'paused', 'resumed', 'exec.exited', 'exec.started', 'exec.exited', 'checkpointed', 'destroyed']);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.seq > seen[i - 1]!.seq, 'seq grows');
  for (const e of seen) if (e.type !== 'reset') assert.equal(e.sandbox, sb.id);
  const paused = seen.find((e) => e.type === 'paused');
  assert.ok(paused && paused.type !== 'reset' && (paused.data.execs as string[]).includes(ticker.id));
  assert.equal(events.lastSeq, seen.at(-1)!.seq);
  // The filtered stream ends too (after the destroyed event it does not show).
  assert.deepEqual((await collect(checkpoints)).map((e) => e.type), ['checkpointed']);

  // Replayed after the fact from a seq: the destroyed sandbox's stream is what is kept, then it ends.
  const again = await collect(client.events({ sandbox: sb.id, after: seen[3]!.seq }));
  assert.deepEqual(again.map((e) => e.seq), seen.slice(4).map((e) => e.seq));
  await assert.rejects(sb.pause(), (e) => isCorralApiError(e, 'SANDBOX_STATE') || isCorralApiError(e, 'SANDBOX_NOT_FOUND'));
});

test('corral.events(): every sandbox the caller sees, types filter, a reset for a seq the daemon never reached, close()', { timeout: 30_000 }, async () => {
  const acme = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key([...SCOPES], 'ev-acme') });
  const beta = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key([...SCOPES], 'ev-beta') });
  const stream = acme.events({ types: ['created', 'destroyed'] });
  const owner = daemon.owner.events({ types: ['created'] });
  await Promise.all([stream.ready, owner.ready]);
  const theirs = await beta.sandboxes.create({ backend: 'namespace' });
  const mine = await acme.sandboxes.create({ backend: 'namespace' });
  await mine.destroy();
  const got = await collect(stream, (e) => e.type === 'destroyed');
  assert.deepEqual(got.map((e) => [e.type, e.type === 'reset' ? null : e.sandbox]), [['created', mine.id], ['destroyed', mine.id]], "another tenant's events are not seen");
  const byOwner = await collect(owner, (e) => e.type !== 'reset' && e.sandbox === mine.id);
  assert.deepEqual(byOwner.map((e) => (e.type === 'reset' ? null : e.sandbox)), [theirs.id, mine.id], 'the owner sees every tenant');

  const reset = acme.events({ after: 1_000_000_000 });
  const [first] = await collect(reset, () => true);
  assert.ok(first && first.type === 'reset', JSON.stringify(first));
  assert.equal(first.data.requested, 1_000_000_000);
  assert.match(first.data.reason, /restarted/);

  const idle = acme.events();
  await idle.ready;
  const reading = collect(idle);
  await idle.close();
  assert.deepEqual(await reading, [], 'close() ends the iteration quietly');
  assert.throws(() => acme.events({ after: -1 }), (e) => isCorralApiError(e, 'INVALID_ARGUMENT'));
  await assert.rejects(collect(acme.events({ sandbox: theirs.id })), (e) => isCorralApiError(e, 'SANDBOX_NOT_FOUND'));
  const ac = new AbortController();
  const aborted = acme.events({ signal: ac.signal });
  await aborted.ready;
  ac.abort(new Error('enough'));
  await assert.rejects(collect(aborted), /enough/);
  await theirs.destroy();
});

test('a dropped event stream is re-attached once with Last-Event-ID: nothing missed or repeated', { timeout: 30_000 }, async () => {
  const lastEventIds: (string | null)[] = [];
  let streams = 0;
  // The first event stream's body fails after its first event, as a dropped connection does.
  const cutting: FetchLike = async (url, init) => {
    const res = await fetch(url, init);
    if (!url.includes('/events')) return res;
    lastEventIds.push(new Headers(init.headers).get('last-event-id'));
    if (streams++ > 0) return res;
    const reader = res.body!.getReader();
    let cut = false;
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (cut) {
            await reader.cancel();
            return controller.error(new TypeError('terminated'));
          }
          const { done, value } = await reader.read();
          if (done) return controller.close();
          controller.enqueue(value);
          cut = new TextDecoder().decode(value).includes('\n\n');
        },
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: res.status, headers: res.headers });
  };
  const client = BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key([...SCOPES], 'ev-cut'), fetch: cutting });
  const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const events = sb.events();
  await events.ready;
  await sb.checkpoints.save({ name: 'one' });
  await sb.checkpoints.save({ name: 'two' });
  await sb.checkpoints.save({ name: 'three' });
  await sb.destroy();
  const seen = await collect(events);
  assert.deepEqual(seen.map((e) => (e.type === 'checkpointed' ? e.data.checkpoint : e.type)), ['one', 'two', 'three', 'destroyed']);
  assert.equal(lastEventIds.length, 2, 'one reconnect');
  assert.equal(lastEventIds[0], null);
  assert.equal(lastEventIds[1], String(seen[0]!.seq));
});
