// Process routes (named long-running services of a sandbox) and logs of processes and execs.
import type { Context, Hono } from 'hono';
import { isExecId, isId, processSpecSchema, processStopSchema, execKillSchema, type ProcessInfoWire, type ProcessList } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import { rfc3339Nano, checkLogOptions, liveLines, storedLines, type LogLine, type LogOptions } from '../services/exec-logs.ts';
import type { ExecSessions } from '../services/exec-sessions.ts';
import type { ProcessService } from '../services/process-service.ts';
import { readJson } from './api-middleware.ts';
import type { ApiEnv } from './api-types.ts';
import { requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';
import { sandboxIdParam } from './sandbox-routes.ts';
import { boolQuery, onlyQuery } from './query-params.ts';

export type ProcessesView = Pick<ProcessService, 'start' | 'list' | 'get' | 'stop' | 'kill' | 'remove' | 'logs'>;

function processIdParam(c: Context<ApiEnv>): string {
  const id = c.req.param('id') ?? '';
  const shown = String(id).slice(0, 80);
  if (!isId('proc', id)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not a process id (proc_…)`, { process: shown });
  return id;
}

/** A time for since/until: RFC 3339, or seconds since the epoch (docker's forms); ms since the epoch. */
function timeQuery(c: Context<ApiEnv>, name: string): number | undefined {
  const v = c.req.query(name);
  if (v === undefined) return undefined;
  if (/^[0-9]{1,12}(\.[0-9]{1,9})?$/.test(v)) return Number(v) * 1000;
  const t = /^\d{4}-\d{2}-\d{2}T/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new CorralError('INVALID_ARGUMENT', `${name} must be RFC 3339 (2026-11-30T10:00:00Z) or seconds since the epoch, got '${v.slice(0, 40)}'`, {});
  return t;
}

const LOG_QUERY = ['tail', 'since', 'until', 'timestamps', 'stdout', 'stderr', 'follow', 'format'];

function logQuery(c: Context<ApiEnv>): LogOptions & { follow: boolean; timestamps: boolean; json: boolean } {
  onlyQuery(c, LOG_QUERY);
  const tail = c.req.query('tail');
  if (tail !== undefined && tail !== 'all' && !/^[0-9]{1,9}$/.test(tail)) throw new CorralError('INVALID_ARGUMENT', `tail must be a number of lines or all, got '${tail.slice(0, 40)}'`, {});
  const format = c.req.query('format') ?? 'text';
  if (format !== 'text' && format !== 'json') throw new CorralError('INVALID_ARGUMENT', 'format must be text or json', {});
  const since = timeQuery(c, 'since');
  const until = timeQuery(c, 'until');
  const stdout = boolQuery(c, 'stdout');
  const stderr = boolQuery(c, 'stderr');
  const o = {
    ...(tail !== undefined && tail !== 'all' ? { tail: Number(tail) } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(stdout !== undefined ? { stdout } : {}),
    ...(stderr !== undefined ? { stderr } : {}),
    follow: boolQuery(c, 'follow') ?? false,
    timestamps: boolQuery(c, 'timestamps') ?? false,
    json: format === 'json',
  };
  checkLogOptions(o);
  return o;
}

/** Log lines as text (optionally `<RFC 3339 ns> ` first) or NDJSON, streamed as they come. */
function logResponse(lines: AsyncIterable<LogLine>, o: { timestamps: boolean; json: boolean }, onGone: () => void): Response {
  const encoder = new TextEncoder();
  const it = lines[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await it.next();
        if (next.done) return controller.close();
        const l = next.value;
        const text = o.json ? `${JSON.stringify({ stream: l.stream, time: rfc3339Nano(l.atUs), exec: l.exec, text: l.text })}\n` : `${o.timestamps ? `${rfc3339Nano(l.atUs)} ` : ''}${l.text}\n`;
        controller.enqueue(encoder.encode(text));
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel() {
      onGone();
      await it.return?.(undefined);
    },
  });
  return new Response(body, { headers: { 'content-type': o.json ? 'application/x-ndjson' : 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
}

const LOG_DOC = 'Query: tail (N or all), since/until (RFC 3339 or epoch seconds), timestamps (RFC 3339 with nanoseconds before each line), stdout/stderr (true/false), follow (live until it ends or the client goes), format (text or json: NDJSON {stream, time, exec, text}). Lines of both streams merge in time order; a line\'s time is when its first byte arrived.';

export function registerProcessRoutes(app: Hono<ApiEnv>, docs: RouteDocs, processes: ProcessesView, execs: Pick<ExecSessions, 'get' | 'frames' | 'output'>): void {
  app.post('/v1/sandboxes/:id/processes', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const spec = await readJson(c, processSpecSchema);
    return c.json(processes.start(id, spec, scopeOf(c)) satisfies ProcessInfoWire, 201);
  });
  docs.add({ method: 'post', path: '/v1/sandboxes/:id/processes', operationId: 'startProcess', tags: ['processes'], summary: 'Start a named process (a dev server, a watcher): a background exec with a restart policy', body: 'ProcessSpec', responses: { 201: { description: 'The process, running.', schema: 'ProcessInfo' } }, errors: [404, 409] });

  app.get('/v1/sandboxes/:id/processes', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['running']);
    const running = boolQuery(c, 'running');
    return c.json({ processes: processes.list(sandboxIdParam(c), running ? { running } : {}, scopeOf(c)) } satisfies ProcessList);
  });
  docs.add({ method: 'get', path: '/v1/sandboxes/:id/processes', operationId: 'listProcesses', tags: ['processes'], summary: "A sandbox's processes (?running=true: the running ones)", responses: { 200: { description: 'The processes.', schema: 'ProcessList' } }, errors: [404] });

  app.get('/v1/processes/:id', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, []);
    return c.json(processes.get(processIdParam(c), scopeOf(c)) satisfies ProcessInfoWire);
  });
  docs.add({ method: 'get', path: '/v1/processes/:id', operationId: 'getProcess', tags: ['processes'], summary: 'A process: state, restarts, its current run', responses: { 200: { description: 'The process.', schema: 'ProcessInfo' } }, errors: [400, 404] });

  app.post('/v1/processes/:id/stop', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = processIdParam(c);
    const body = await readJson(c, processStopSchema);
    return c.json((await processes.stop(id, body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}, scopeOf(c))) satisfies ProcessInfoWire);
  });
  docs.add({ method: 'post', path: '/v1/processes/:id/stop', operationId: 'stopProcess', tags: ['processes'], summary: 'Stop a process: SIGTERM, wait timeoutMs (default 10000), then SIGKILL; it is not restarted', body: 'ProcessStop', responses: { 200: { description: 'The process, stopped.', schema: 'ProcessInfo' } }, errors: [400, 404] });

  app.post('/v1/processes/:id/kill', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = processIdParam(c);
    const body = await readJson(c, execKillSchema);
    return c.json(processes.kill(id, body.signal ?? 'KILL', scopeOf(c)) satisfies ProcessInfoWire);
  });
  docs.add({ method: 'post', path: '/v1/processes/:id/kill', operationId: 'killProcess', tags: ['processes'], summary: 'Send a signal to the current run (default KILL); the restart policy then applies', body: 'ExecKill', responses: { 200: { description: 'The process.', schema: 'ProcessInfo' } }, errors: [400, 404, 409] });

  app.delete('/v1/processes/:id', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, ['force']);
    const id = processIdParam(c);
    const force = boolQuery(c, 'force') ?? false;
    return c.json((await processes.remove(id, { force }, scopeOf(c))) satisfies ProcessInfoWire);
  });
  docs.add({ method: 'delete', path: '/v1/processes/:id', operationId: 'removeProcess', tags: ['processes'], summary: 'Remove a process; a running one only with ?force=true (it is stopped first)', responses: { 200: { description: 'The removed process.', schema: 'ProcessInfo' } }, errors: [400, 404, 409] });

  app.get('/v1/processes/:id/logs', (c) => {
    requireScope(c, 'sandboxes:read');
    const o = logQuery(c);
    const id = processIdParam(c);
    const scope = scopeOf(c);
    processes.get(id, scope);
    const gone = new AbortController();
    return logResponse(processes.logs(id, { ...o, signal: gone.signal }, scope), o, () => gone.abort());
  });
  docs.add({ method: 'get', path: '/v1/processes/:id/logs', operationId: 'processLogs', tags: ['processes'], summary: 'The logs of a process, across its runs', description: LOG_DOC, responses: { 200: { description: 'text/plain lines, or NDJSON with format=json.' } }, errors: [400, 404] });

  app.get('/v1/execs/:id/logs', (c) => {
    requireScope(c, 'sandboxes:read');
    const o = logQuery(c);
    const id = c.req.param('id');
    if (!isExecId(id)) throw new CorralError('INVALID_ARGUMENT', `'${String(id).slice(0, 80)}' is not an exec id (exec_…)`, {});
    const scope = scopeOf(c);
    execs.get(id, scope);
    const gone = new AbortController();
    const lines = async function* () {
      const { lines: stored, ends } = storedLines(execs.output, [id], o);
      yield* stored;
      if (o.follow) yield* liveLines(id, execs.frames(id, ends, { follow: true, signal: gone.signal }, scope), o);
    };
    return logResponse(lines(), o, () => gone.abort());
  });
  docs.add({ method: 'get', path: '/v1/execs/:id/logs', operationId: 'execLogs', tags: ['execs'], summary: 'The logs of an exec (background execs above all) as lines', description: LOG_DOC, responses: { 200: { description: 'text/plain lines, or NDJSON with format=json.' } }, errors: [400, 404] });
}
