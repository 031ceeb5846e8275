// Event streams: the daemon's events (sandboxes, execs, approvals) as Server-Sent Events, all of
// them or one sandbox's, filtered by type. `id:` is the event's seq: a client that reconnects with
// Last-Event-ID gets what it missed from the event bus's ring, or `event: reset` first when some of
// it is no longer kept. A key sees only its tenant's events (and approval events only with the
// approvals scope); the owner sees everything.
import type { Context, Hono } from 'hono';
import { eventTypes, isId, type CorralEventWire } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import { hasScope } from '../protocol/key-scopes.ts';
import type { CorralEvent, CorralEventType, EventBus } from '../services/event-bus.ts';
import type { SandboxService } from '../services/sandbox-service.ts';
import type { ApiEnv } from './api-types.ts';
import { principalOf, requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';
import { sandboxIdParam } from './sandbox-routes.ts';
import { onlyQuery } from './query-params.ts';

// The wire's list and the bus's type must be the same set: the compiler checks both directions
// (the list against the type here, the type against the wire schema in toWire).
const wireTypes: readonly CorralEventType[] = eventTypes;
const toWire = (e: CorralEvent): CorralEventWire => e;

export interface EventsView {
  events: Pick<EventBus, 'subscribe' | 'since' | 'lastSeq'>;
  sandboxes: Pick<SandboxService, 'get'>;
}

export interface EventRouteOptions {
  /** Between `: keepalive` comments (default 15 s). */
  keepaliveMs?: number;
  /** Events waiting for a client that does not read; past it the stream ends (reconnect with Last-Event-ID). Default 1000. */
  maxBacklog?: number;
}

interface StreamFilter {
  sandbox: string | null;
  types: Set<string> | null;
  /** null: every tenant's (the owner). */
  tenant: string | null;
  approvals: boolean;
  /** The sandbox was destroyed already: end after the replay. */
  ended: boolean;
}

const SEQ = /^[0-9]{1,15}$/;

function typesQuery(c: Context<ApiEnv>): Set<string> | null {
  const given = c.req.queries('types');
  if (given === undefined) return null;
  const out = new Set<string>();
  for (const part of given.flatMap((v) => v.split(','))) {
    const t = part.trim();
    if (!(wireTypes as readonly string[]).includes(t))
      throw new CorralError('INVALID_ARGUMENT', `unknown event type '${t.slice(0, 40)}': use a comma-separated list of ${wireTypes.join(', ')}`, { type: t.slice(0, 40) });
    out.add(t);
  }
  return out;
}

/** The seq to resume after: Last-Event-ID (a reconnecting EventSource) wins over ?after=; null: live events only. */
function afterOf(c: Context<ApiEnv>): number | null {
  const header = c.req.header('last-event-id');
  const given = header !== undefined && header !== '' ? header : c.req.query('after');
  if (given === undefined) return null;
  if (!SEQ.test(given)) throw new CorralError('INVALID_ARGUMENT', `Last-Event-ID and after must be an event seq (a whole number), got '${given.slice(0, 40)}'`, {});
  return Number(given);
}

function filterOf(c: Context<ApiEnv>, view: EventsView, sandbox: string | null): StreamFilter {
  const scope = scopeOf(c);
  // Another tenant's sandbox (or a missing one) is 404 before any stream starts.
  const sb = sandbox === null ? null : view.sandboxes.get(sandbox, scope);
  const p = principalOf(c);
  const approvals = p.kind !== 'key' || hasScope(p.scopes, 'approvals');
  // By id: a name given in the path is resolved once, here.
  return { sandbox: sb?.id ?? null, types: typesQuery(c), tenant: scope.tenant, approvals, ended: sb?.state === 'destroyed' };
}

function sse(type: string, id: number, data: unknown): string {
  return `event: ${type}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}

function eventStream(c: Context<ApiEnv>, bus: EventsView['events'], filter: StreamFilter, after: number | null, options: EventRouteOptions): Response {
  const keepaliveMs = options.keepaliveMs ?? 15_000;
  const maxBacklog = options.maxBacklog ?? 1000;
  const encoder = new TextEncoder();
  const queue: string[] = [];
  let ending = filter.ended;
  let closed = false;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };

  const visible = (e: CorralEvent): boolean =>
    (filter.tenant === null || e.tenant === filter.tenant) && (filter.sandbox === null || e.sandbox === filter.sandbox) && (filter.approvals || !e.type.startsWith('approval.'));
  const take = (e: CorralEvent): void => {
    if (!visible(e)) return;
    if (filter.types === null || filter.types.has(e.type)) queue.push(sse(e.type, e.seq, toWire(e)));
    // Nothing follows a sandbox's destruction: its stream ends there (the filter may hide the event).
    if (filter.sandbox !== null && e.type === 'destroyed') ending = true;
  };

  if (after !== null) {
    const kept = bus.since(after);
    const restarted = after > bus.lastSeq;
    const replay = restarted ? bus.since(0).events : kept.events;
    if (!kept.complete || restarted) {
      const oldest = replay[0]?.seq ?? null;
      const reason = restarted ? 'the daemon restarted since that event: its events start again at 1' : 'events after that one were dropped from the daemon\'s ring of recent events';
      queue.push(sse('reset', oldest === null ? bus.lastSeq : oldest - 1, { requested: after, oldestSeq: oldest, lastSeq: bus.lastSeq, reason }));
    }
    for (const e of replay) take(e);
  }
  // Everything up to here came from the ring; the subscription delivers only later events.
  let seen = bus.lastSeq;
  const unsubscribe = ending
    ? () => undefined
    : bus.subscribe((e) => {
        if (e.seq <= seen || ending) return;
        seen = e.seq;
        take(e);
        if (queue.length > maxBacklog) {
          // A client this far behind reconnects with Last-Event-ID and is served from the ring.
          queue.length = 0;
          finish();
        }
        poke();
      });
  let keepalive: ReturnType<typeof setInterval> | undefined;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe();
    clearInterval(keepalive);
    c.req.raw.signal.removeEventListener('abort', finish);
    poke();
  };
  c.req.raw.signal.addEventListener('abort', finish);

  const body = new ReadableStream<Uint8Array>(
    {
      start() {
        keepalive = setInterval(() => {
          queue.push(': keepalive\n\n');
          poke();
        }, keepaliveMs);
        keepalive.unref();
      },
      async pull(controller) {
        while (queue.length === 0 && !ending && !closed) await new Promise<void>((resolve) => (wake = resolve));
        if (queue.length > 0) controller.enqueue(encoder.encode(queue.splice(0).join('')));
        else {
          finish();
          controller.close();
        }
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: 1 },
  );
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' } });
}

export function registerEventRoutes(app: Hono<ApiEnv>, docs: RouteDocs, view: EventsView, options: EventRouteOptions = {}): void {
  const description =
    'Each event: `event: <type>`, `id: <seq>`, `data: <CorralEvent JSON>`, oldest first. Without Last-Event-ID (or ?after=SEQ) only events from now on come; with it, the kept events after that seq are replayed first. When some of them are no longer kept (the ring holds the latest 1024) or the daemon restarted since, `event: reset` (data: EventReset) comes first, then what is kept. A `: keepalive` comment every 15 s. A key sees only its tenant\'s events, approval events only with the approvals scope. A client too far behind is disconnected: reconnect with Last-Event-ID. The same path upgraded to a WebSocket (subprotocol corral.v1, resume with ?after=) sends each event as a text message.';
  const query = [
    { name: 'types', description: `Comma-separated event types to receive (repeatable; default all): ${eventTypes.join(', ')}.` },
    { name: 'after', description: 'Replay the kept events after this seq first (Last-Event-ID wins when both are given).', type: 'integer' as const },
  ];

  app.get('/v1/events', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['sandbox', 'types', 'after']);
    const given = c.req.queries('sandbox') ?? [];
    if (given.length > 1) throw new CorralError('INVALID_ARGUMENT', 'give sandbox at most once (or use GET /v1/sandboxes/{id}/events)', {});
    const sandbox = given[0] ?? null;
    const shown = (sandbox ?? '').slice(0, 80);
    if (sandbox !== null && !isId('sbx', sandbox)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not a sandbox id: expected sbx_ followed by 26 base32 characters`, { sandbox: shown });
    const filter = filterOf(c, view, sandbox);
    return eventStream(c, view.events, filter, afterOf(c), options);
  });
  docs.add({
    method: 'get',
    path: '/v1/events',
    operationId: 'streamEvents',
    tags: ['events'],
    summary: "The daemon's events as Server-Sent Events (every sandbox the caller may see, or ?sandbox=ID's)",
    description,
    query: [{ name: 'sandbox', description: "Only this sandbox's events; the stream ends after its destroyed event." }, ...query],
    responses: { 200: { description: 'text/event-stream of CorralEvent.', contentType: 'text/event-stream' } },
    errors: [400, 404],
  });

  app.get('/v1/sandboxes/:id/events', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['types', 'after']);
    const id = sandboxIdParam(c);
    const filter = filterOf(c, view, id);
    return eventStream(c, view.events, filter, afterOf(c), options);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes/:id/events',
    operationId: 'streamSandboxEvents',
    tags: ['events'],
    summary: "One sandbox's events as Server-Sent Events; the stream ends after its destroyed event",
    description,
    query,
    responses: { 200: { description: 'text/event-stream of CorralEvent.', contentType: 'text/event-stream' } },
    errors: [400, 404],
  });
}
