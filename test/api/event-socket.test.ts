// The event stream over a WebSocket, against a real server: a sandbox's lifecycle in order then
// close 1000, type filters, replay with ?after= (and reset), the API's refusals as the upgrade's
// answer (401 without a key, 404 for another tenant's sandbox), tenant isolation with a key given
// as a browser would (subprotocol), and the subscription released when the client goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createApi } from '../../src/api/api-app.ts';
import { createEventSocketServer } from '../../src/api/event-socket.ts';
import { createExecSocketServer } from '../../src/api/exec-socket.ts';
import { startDaemonServer } from '../../src/daemon/daemon-server.ts';
import { corralEventSchema, eventResetSchema } from '../../src/protocol/api-schemas.ts';
import { openCorral, tempDir } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

async function daemon() {
  const corral = openCorral();
  const app = createApi({ corral, logger: quiet, version: '0.0.0', auth: { keys: corral.keys } });
  const execSockets = createExecSocketServer({ execs: corral.execs, logger: quiet, keys: corral.keys });
  const events = createEventSocketServer({ fetch: app.fetch, logger: quiet });
  const socketPath = join(tempDir(), 'd.sock');
  const server = await startDaemonServer({
    fetch: app.fetch,
    socketPath,
    tcp: { port: 0 },
    upgrade: (req, socket, head, transport) => (events.handles(req.url) ? events : execSockets).handleUpgrade(req, socket, head, transport),
  });
  const close = async () => {
    events.close();
    execSockets.close();
    await server.close();
    corral.close();
  };
  return { corral, socketPath, tcp: `ws://127.0.0.1:${server.tcp!.port}`, close };
}

/** Connects; collects messages until the server closes; `opened` resolves on open or with the refusal status. */
function connect(url: string, protocols: string[] = ['corral.v1']) {
  const ws = new WebSocket(url, protocols);
  const messages: any[] = [];
  let onMessage: (() => void) | null = null;
  const opened = new Promise<number>((resolve) => {
    ws.on('open', () => resolve(101));
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(0));
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('message', (data) => {
    messages.push(JSON.parse(data.toString()));
    onMessage?.();
  });
  /** Waits until `n` messages came. */
  const count = async (n: number): Promise<any[]> => {
    while (messages.length < n) await new Promise<void>((resolve) => (onMessage = resolve));
    return messages.slice(0, n);
  };
  return { ws, messages, opened, closed, count };
}

test('event WebSocket: a sandbox\'s lifecycle in order, then close 1000; type filters; replay with after (and reset)', async () => {
  const d = await daemon();
  try {
    const sb = d.corral.sandboxes.create({ backend: 'host', policy: 'permissive' });
    const one = connect(`ws+unix://${d.socketPath}:/v1/sandboxes/${sb.id}/events?after=0`);
    const onlyExits = connect(`ws+unix://${d.socketPath}:/v1/events?types=exec.exited`);
    assert.equal(await one.opened, 101);
    assert.equal(await onlyExits.opened, 101);
    await d.corral.execs.run(sb.id, { argv: ['true'] });
    d.corral.sandboxes.destroy(sb.id);
    assert.equal(await one.closed, 1000, 'a sandbox\'s stream ends after its destroyed event');
    const events = one.messages.map((m) => corralEventSchema.parse(m));
    assert.deepEqual(events.map((e) => e.type), ['created', 'ready', 'exec.started', 'exec.exited', 'destroyed']);
    assert.ok(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq));
    const [exited] = await onlyExits.count(1);
    assert.equal(corralEventSchema.parse(exited).type, 'exec.exited');
    // A client's message is answered, not fatal.
    onlyExits.ws.send('hello');
    const [, answer] = await onlyExits.count(2);
    assert.equal(answer.type, 'error');
    onlyExits.ws.close();
    await onlyExits.closed;

    // Resuming after a seq the daemon never reached: reset first, then what is kept.
    const late = connect(`ws+unix://${d.socketPath}:/v1/events?after=999999`);
    const [reset, first] = await late.count(2);
    assert.equal(reset.type, 'reset');
    eventResetSchema.parse(Object.fromEntries(Object.entries(reset).filter(([k]) => k !== 'type')));
    assert.equal(corralEventSchema.parse(first).type, 'created');
    late.ws.close();
    await late.closed;
  } finally {
    await d.close();
  }
});

test('event WebSocket refusals are the API\'s: bad query 400, no key 401, another tenant\'s sandbox 404; a key sees only its tenant', async () => {
  const d = await daemon();
  try {
    const acmeKey = d.corral.keys.create({ tenant: 'acme', scopes: ['sandboxes:read', 'sandboxes:write'] });
    const theirs = d.corral.sandboxes.create({ backend: 'host', policy: 'permissive' }, { tenant: 'globex' });
    assert.equal(await connect(`ws+unix://${d.socketPath}:/v1/events?types=nope`).opened, 400);
    assert.equal(await connect(`${d.tcp}/v1/events`).opened, 401);
    assert.equal(await connect(`${d.tcp}/v1/sandboxes/${theirs.id}/events`, ['corral.v1', `corral.key.${acmeKey.secret}`]).opened, 404);

    const acme = connect(`${d.tcp}/v1/events`, ['corral.v1', `corral.key.${acmeKey.secret}`]);
    assert.equal(await acme.opened, 101);
    d.corral.sandboxes.create({ backend: 'host', policy: 'permissive' }, { tenant: 'globex' });
    const mine = d.corral.sandboxes.create({ backend: 'host', policy: 'permissive' }, { tenant: 'acme' });
    const got = (await acme.count(2)).map((m) => corralEventSchema.parse(m));
    assert.deepEqual(got.map((e) => [e.type, e.sandbox]), [['created', mine.id], ['ready', mine.id]]);
    // The client goes: the server's subscription (the SSE stream it carries) is released.
    const before = d.corral.events.subscribers;
    acme.ws.close();
    await acme.closed;
    for (let i = 0; i < 100 && d.corral.events.subscribers >= before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(d.corral.events.subscribers, before - 1);
  } finally {
    await d.close();
  }
});
