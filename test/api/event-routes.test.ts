// Event streams over SSE: a sandbox's lifecycle seen in order, filters, resuming with Last-Event-ID
// (and `reset` when the ring lost events or the daemon restarted), tenant isolation with API keys,
// keepalives, a slow client dropped, and the subscription released when the client goes (in
// process and over a real Unix socket).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createApi } from '../../src/api/api-app.ts';
import { startDaemonServer } from '../../src/daemon/daemon-server.ts';
import { corralEventSchema, eventResetSchema, sandboxSchema, type CorralEventWire } from '../../src/protocol/api-schemas.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import type { Corral } from '../../src/services/corral.ts';
import type { EventListener } from '../../src/services/event-bus.ts';
import { openCorral, tempDir } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

const tcp = { transport: 'tcp' as const };

type Block = { event?: string; id?: string; data?: string; comment?: string };

/** An SSE body as blocks, pulled one at a time; `stop()` cancels the stream (the client goes). */
function blocks(res: Response) {
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  return {
    /** The next block, or null when the stream ended. */
    async next(): Promise<Block | null> {
      for (;;) {
        const at = buf.indexOf('\n\n');
        if (at >= 0) {
          const text = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const block: Block = {};
          for (const line of text.split('\n')) {
            if (line.startsWith(':')) block.comment = line.slice(1).trim();
            else {
              const colon = line.indexOf(':');
              (block as Record<string, string>)[line.slice(0, colon)] = line.slice(colon + 2);
            }
          }
          return block;
        }
        const { value, done } = await reader.read();
        if (done) return null;
        buf += value;
      }
    },
    /** Events until `count` are read (or the stream ends). */
    async events(count: number): Promise<CorralEventWire[]> {
      const out: CorralEventWire[] = [];
      while (out.length < count) {
        const b = await this.next();
        if (b === null) break;
        if (b.comment !== undefined) continue;
        const e = corralEventSchema.parse(JSON.parse(b.data!));
        assert.equal(b.event, e.type);
        assert.equal(b.id, String(e.seq));
        out.push(e);
      }
      return out;
    },
    /** Every event until the stream ends. */
    async rest(): Promise<CorralEventWire[]> {
      return this.events(Number.MAX_SAFE_INTEGER);
    },
    stop: () => reader.cancel(),
  };
}

/** An app over `corral` whose event bus counts its subscribers. */
function setup(options: { withAuth?: boolean; keepaliveMs?: number; maxBacklog?: number } = {}) {
  const corral = openCorral();
  let subscribers = 0;
  const events = {
    subscribe(l: EventListener) {
      subscribers++;
      const off = corral.events.subscribe(l);
      return () => {
        subscribers--;
        off();
      };
    },
    since: (seq: number) => corral.events.since(seq),
    get lastSeq() {
      return corral.events.lastSeq;
    },
  };
  const app = createApi({
    corral: { exec: corral.exec, sandboxes: corral.sandboxes, execs: corral.execs, lifecycle: corral.lifecycle, events },
    logger: quiet,
    version: '0.0.0',
    ...(options.withAuth ? { auth: { keys: corral.keys } } : {}),
    events: { ...(options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {}), ...(options.maxBacklog ? { maxBacklog: options.maxBacklog } : {}) },
  });
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}, env?: { transport: 'tcp' | 'unix' }) =>
    app.request(path, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } : { headers }) }, env);
  const sandbox = async (headers: Record<string, string> = {}, env?: { transport: 'tcp' }) =>
    sandboxSchema.parse(await (await call('POST', '/v1/sandboxes', { backend: 'namespace', policy: 'permissive' }, headers, env)).json());
  return { corral, app, call, sandbox, subscribers: () => subscribers };
}

test("a sandbox's events in order, from created to destroyed; the stream ends there", async () => {
  const { call, sandbox, subscribers } = setup();
  const sb = await sandbox();
  const stream = blocks(await call('GET', `/v1/sandboxes/${sb.id}/events?after=0`));
  assert.equal((await call('POST', `/v1/sandboxes/${sb.id}/exec`, { argv: ['true'] })).status, 200);
  await call('POST', `/v1/sandboxes/${sb.id}/pause`);
  await call('POST', `/v1/sandboxes/${sb.id}/resume`);
  await call('POST', `/v1/sandboxes/${sb.id}/checkpoints`, { name: 'one' });
  await call('POST', `/v1/sandboxes/${sb.id}/checkpoints/one/restore`);
  await call('DELETE', `/v1/sandboxes/${sb.id}`);
  const events = await stream.rest();
  assert.deepEqual(
    events.map((e) => e.type),
    ['created', 'ready', 'exec.started', 'exec.exited', 'paused', 'resumed', 'checkpointed', 'restored', 'destroyed'],
  );
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.seq > events[i - 1]!.seq);
  for (const e of events) assert.equal(e.sandbox, sb.id);
  assert.equal(events[2]!.data.exec, events[3]!.data.exec);
  assert.equal(events[6]!.data.checkpoint, 'one');
  assert.equal(subscribers(), 0, 'the subscription ended with the stream');
  // A destroyed sandbox's stream replays what is kept and ends at once.
  const again = blocks(await call('GET', `/v1/events?sandbox=${sb.id}&after=0&types=destroyed`));
  assert.deepEqual((await again.rest()).map((e) => e.type), ['destroyed']);
});

test('filters by sandbox and types; Last-Event-ID resumes exactly after the last event seen', async () => {
  const { call, sandbox, subscribers } = setup();
  const a = await sandbox();
  const b = await sandbox();
  const all = blocks(await call('GET', '/v1/events'));
  const onlyA = blocks(await call('GET', `/v1/events?sandbox=${a.id}&types=paused,resumed`));
  const repeated = blocks(await call('GET', `/v1/events?types=paused&types=destroyed`));
  for (const sb of [b, a]) {
    await call('POST', `/v1/sandboxes/${sb.id}/pause`);
    await call('POST', `/v1/sandboxes/${sb.id}/resume`);
  }
  await call('DELETE', `/v1/sandboxes/${b.id}`);
  assert.deepEqual((await onlyA.events(2)).map((e) => [e.type, e.sandbox]), [['paused', a.id], ['resumed', a.id]]);
  assert.deepEqual((await repeated.events(3)).map((e) => [e.type, e.sandbox]), [['paused', b.id], ['paused', a.id], ['destroyed', b.id]]);
  const first = await all.events(2);
  assert.deepEqual(first.map((e) => [e.type, e.sandbox]), [['paused', b.id], ['resumed', b.id]]);
  await all.stop();
  await onlyA.stop();
  await repeated.stop();
  assert.equal(subscribers(), 0);

  // The client comes back with the id of the last event it saw: it gets the next ones, then live ones.
  const resumed = blocks(await call('GET', '/v1/events', undefined, { 'last-event-id': String(first[1]!.seq) }));
  assert.deepEqual((await resumed.events(3)).map((e) => [e.type, e.sandbox]), [['paused', a.id], ['resumed', a.id], ['destroyed', b.id]]);
  await call('POST', `/v1/sandboxes/${a.id}/pause`);
  assert.deepEqual((await resumed.events(1)).map((e) => [e.type, e.sandbox]), [['paused', a.id]]);
  await resumed.stop();
});

test('reset: a Last-Event-ID older than the ring, or from before a restart, gets event: reset and then what is kept', async () => {
  const { corral, call } = setup();
  for (let i = 0; i < 1100; i++) corral.events.publish('ready', { sandbox: null, tenant: null });
  const last = corral.events.lastSeq;

  const old = blocks(await call('GET', '/v1/events', undefined, { 'last-event-id': '5' }));
  const reset = (await old.next())!;
  assert.equal(reset.event, 'reset');
  const data = eventResetSchema.parse(JSON.parse(reset.data!));
  assert.equal(data.requested, 5);
  assert.equal(data.lastSeq, last);
  assert.equal(data.oldestSeq, last - 1023);
  assert.equal(reset.id, String(last - 1024));
  assert.match(data.reason, /dropped/);
  const replay = await old.events(1024);
  assert.deepEqual([replay[0]!.seq, replay.at(-1)!.seq, replay.length], [last - 1023, last, 1024]);
  await old.stop();

  const future = blocks(await call('GET', '/v1/events?after=999999'));
  const r2 = (await future.next())!;
  assert.equal(r2.event, 'reset');
  assert.match(eventResetSchema.parse(JSON.parse(r2.data!)).reason, /restarted/);
  assert.equal((await future.events(1))[0]!.seq, last - 1023);
  await future.stop();

  // Nothing lost: no reset.
  const exact = blocks(await call('GET', '/v1/events', undefined, { 'last-event-id': String(last - 1) }));
  assert.equal((await exact.next())!.event, 'ready');
  await exact.stop();
});

test('tenants: a key sees only its own tenant\'s events, approval events only with the approvals scope; others\' sandboxes are 404', async () => {
  const { corral, call, sandbox } = setup({ withAuth: true });
  const key = (c: Corral, scopes: KeyScope[], tenant: string) => ({ authorization: `Bearer ${c.keys.create({ tenant, scopes }).secret}` });
  const acme = key(corral, ['sandboxes:read', 'sandboxes:write'], 'acme');
  const acmeApprovals = key(corral, ['sandboxes:read', 'approvals'], 'acme');
  const beta = key(corral, ['sandboxes:read', 'sandboxes:write'], 'beta');
  const a = await sandbox(acme, tcp);
  const b = await sandbox(beta, tcp);

  const acmeAll = blocks(await call('GET', '/v1/events?after=0', undefined, acme, tcp));
  const acmeWithApprovals = blocks(await call('GET', '/v1/events', undefined, acmeApprovals, tcp));
  const owner = blocks(await call('GET', '/v1/events?after=0&types=created', undefined, {}, { transport: 'unix' }));
  corral.events.publish('approval.requested', { sandbox: a.id, tenant: 'acme', data: { approval: 'apr_0000000000000000' } });
  await call('POST', `/v1/sandboxes/${b.id}/pause`, undefined, beta, tcp);
  await call('POST', `/v1/sandboxes/${a.id}/pause`, undefined, acme, tcp);

  const seen = await acmeAll.events(3);
  assert.deepEqual(seen.map((e) => [e.type, e.sandbox, e.tenant]), [['created', a.id, 'acme'], ['ready', a.id, 'acme'], ['paused', a.id, 'acme']]);
  assert.deepEqual((await acmeWithApprovals.events(2)).map((e) => e.type), ['approval.requested', 'paused']);
  assert.deepEqual((await owner.events(2)).map((e) => e.sandbox), [a.id, b.id]);
  for (const s of [acmeAll, acmeWithApprovals, owner]) await s.stop();

  await errorOf(await call('GET', `/v1/events?sandbox=${b.id}`, undefined, acme, tcp), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call('GET', `/v1/sandboxes/${b.id}/events`, undefined, acme, tcp), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await call('GET', '/v1/events', undefined, key(corral, ['exec'], 'acme'), tcp), 403, 'PERMISSION_DENIED');
  await errorOf(await call('GET', '/v1/events', undefined, {}, tcp), 401, 'UNAUTHENTICATED');
});

test('hostile queries are 400 before any stream starts; an unknown sandbox is 404', async () => {
  const { call, subscribers } = setup();
  for (const q of ['?types=bogus', '?types=', '?types=paused,,resumed', '?after=abc', '?after=-1', '?after=1e3', '?sandbox=sbx_nope', '?sandbox=../x', '?tenant=x', '?sandbox=a&sandbox=b'])
    await errorOf(await call('GET', `/v1/events${q}`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/events', undefined, { 'last-event-id': '1,2' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/sandboxes/sbx_nope/events'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/sandboxes/sbx_00000000000000000000000000/events?sandbox=x'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', '/v1/sandboxes/sbx_00000000000000000000000000/events'), 404, 'SANDBOX_NOT_FOUND');
  assert.equal(subscribers(), 0);
});

test('keepalive comments; a client that does not read is dropped once its backlog is over the bound', async () => {
  const { corral, call, subscribers } = setup({ keepaliveMs: 20, maxBacklog: 5 });
  const idle = blocks(await call('GET', '/v1/events'));
  assert.deepEqual(await idle.next(), { comment: 'keepalive' });
  await idle.stop();

  const slow = blocks(await call('GET', '/v1/events'));
  assert.equal(subscribers(), 1);
  for (let i = 0; i < 10; i++) corral.events.publish('ready', { sandbox: null, tenant: null });
  assert.equal(subscribers(), 0, 'dropped at once');
  // What it has not read is gone from the stream; Last-Event-ID gets it from the ring.
  let b: Block | null;
  while ((b = await slow.next()) !== null) assert.ok(b.comment !== undefined || b.event === 'ready');
});

test('over a real Unix socket: events arrive live, and a client that disconnects releases its subscription', async () => {
  const { corral, app, subscribers } = setup();
  const socketPath = join(tempDir(), 'd.sock');
  const server = await startDaemonServer({ fetch: app.fetch, socketPath });
  try {
    const got = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath, path: '/v1/events?types=ready', agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\n\n')) {
            req.destroy();
            resolve(text);
          }
        });
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      req.end();
      // Published once the stream is open (the subscription exists).
      const poll = setInterval(() => {
        if (subscribers() > 0) {
          clearInterval(poll);
          corral.events.publish('ready', { sandbox: null, tenant: null, data: { live: true } });
        }
      }, 5);
    });
    assert.match(got, /^event: ready\nid: \d+\ndata: \{.*"live":true/);
    for (let i = 0; i < 500 && subscribers() > 0; i++) await sleep(10);
    assert.equal(subscribers(), 0);
  } finally {
    await server.close();
  }
});
