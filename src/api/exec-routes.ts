// Exec routes: run a command in a sandbox (collected, streamed as Server-Sent Events, or in the
// background), then inspect, list, wait for, signal, feed stdin to, and read the output of execs.
import { isAscii, isUtf8 } from 'node:buffer';
import type { Context, Hono } from 'hono';
import { execKillSchema, execRequestSchema, execStartSchema, execStateSchema, execWaitSchema, isExecId, type ExecFrameWire, type ExecList, type ExecRecord, type ExecResultEnvelope } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import type { ExecResult } from '../protocol/exec-result.ts';
import { attachedStreams, type ExecFrame, type ExecSessions, type StartRequest } from '../services/exec-sessions.ts';
import { readJson } from './api-middleware.ts';
import type { ApiEnv } from './api-types.ts';
import { requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';
import { sandboxIdParam } from './sandbox-routes.ts';
import { boolQuery, onlyQuery } from './query-params.ts';

export type ExecsView = Pick<ExecSessions, 'start' | 'create' | 'startCreated' | 'get' | 'list' | 'wait' | 'kill' | 'writeStdin' | 'closeStdin' | 'resize' | 'frames'>;

/** Bytes a stdin request may carry (the body limit of the API applies too). */
const WAIT_DEFAULT_MS = 30_000;

// The exec layer's envelope must fit the wire schema: the compiler checks it here.
const toWire = (r: ExecResult): ExecResultEnvelope => r;

/**
 * A frame as JSON: output bytes as text when they are valid UTF-8, else base64. The exit frame's
 * envelope leaves out stdout and stderr: the stream carried them already (GET /v1/execs/{id} has them).
 */
export function frameToWire(f: ExecFrame): ExecFrameWire {
  if (f.type === 'exit') return f.exec.result ? { type: 'exit', exec: { ...f.exec, result: { ...f.exec.result, stdout: '', stderr: '' } } } : (f as ExecFrameWire);
  if (f.type !== 'output') return f as ExecFrameWire;
  const text = isUtf8(f.data);
  return { type: 'output', stream: f.stream, offset: f.offset, atUs: f.atUs, data: f.data.toString(text ? 'utf8' : 'base64'), encoding: text ? 'utf8' : 'base64' };
}

/** Counts the output bytes a route streams (the daemon's metrics). */
export type StreamCounter = (stream: 'stdout' | 'stderr', bytes: number) => void;

/**
 * Whether ASCII bytes hold any that JSON escapes (a control character, a quote or a backslash),
 * four at a time (no string is made of them). Every byte is below 0x80, so a byte's high bit after
 * the subtraction means it matched; a borrow from a lower byte can only add false alarms (then the
 * frame takes the escaping path, still exact).
 */
function needsEscape(data: Buffer): boolean {
  const escaped = (c: number) => c < 0x20 || c === 0x22 || c === 0x5c;
  // Byte by byte up to a 4-byte boundary of the underlying memory, then words, then the rest.
  const lead = data.length < 64 ? data.length : (4 - (data.byteOffset % 4)) % 4;
  for (let k = 0; k < lead; k++) if (escaped(data[k]!)) return true;
  if (lead === data.length) return false;
  const words = (data.length - lead) >>> 2;
  const w = new Int32Array(data.buffer, data.byteOffset + lead, words);
  let i = 0;
  for (; i + 8 <= words; i += 8) {
    let acc = 0;
    for (let j = i; j < i + 8; j++) {
      const x = w[j]!;
      acc |= (x - 0x20202020) | ((x ^ 0x22222222) - 0x01010101) | ((x ^ 0x5c5c5c5c) - 0x01010101);
    }
    if (acc & 0x80808080) return true;
  }
  for (; i < words; i++) {
    const x = w[i]!;
    if (((x - 0x20202020) | ((x ^ 0x22222222) - 0x01010101) | ((x ^ 0x5c5c5c5c) - 0x01010101)) & 0x80808080) return true;
  }
  for (let k = lead + words * 4; k < data.length; k++) if (escaped(data[k]!)) return true;
  return false;
}

/**
 * An output frame's SSE event as parts to send in order, byte for byte what
 * JSON.stringify(frameToWire(f)) gives, with fewer copies: ASCII output that needs no escapes is
 * sent as it is between the JSON's head and tail (no string, no copy); other ASCII is escaped as a
 * one-byte string; anything else takes the general path.
 */
function outputEvent(f: Extract<ExecFrame, { type: 'output' }>, id: string, encoder: { encode(text: string): Uint8Array }): Uint8Array[] {
  if (!isAscii(f.data)) return [encoder.encode(`event: output\nid: ${id}\ndata: ${JSON.stringify(frameToWire(f))}\n\n`)];
  const head = `event: output\nid: ${id}\ndata: {"type":"output","stream":"${f.stream}","offset":${f.offset},"atUs":${f.atUs},"data":"`;
  const tail = '","encoding":"utf8"}\n\n';
  if (needsEscape(f.data)) return [Buffer.from(`${head.slice(0, -1)}${JSON.stringify(f.data.toString('latin1'))}${tail.slice(1)}`, 'latin1')];
  return [Buffer.from(head, 'latin1'), f.data, Buffer.from(tail, 'latin1')];
}

/** Frames as an SSE response; `id` carries the offsets reached (`stdout,stderr`) for Last-Event-ID. */
function sseResponse(frames: AsyncGenerator<ExecFrame>, from: { stdout: number; stderr: number }, onGone: () => void, headers: Record<string, string> = {}, count?: StreamCounter): Response {
  const encoder = new TextEncoder();
  const at = { ...from };
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await frames.next();
          if (next.done) return controller.close();
          const f = next.value;
          if (f.type === 'output') {
            at[f.stream] = f.offset + f.data.length;
            count?.(f.stream, f.data.length);
          }
          if (f.type === 'gap') at[f.stream] = f.to;
          const id = `${at.stdout},${at.stderr}`;
          if (f.type === 'output') for (const part of outputEvent(f, id, encoder)) controller.enqueue(part);
          else controller.enqueue(encoder.encode(`event: ${f.type}\nid: ${id}\ndata: ${JSON.stringify(frameToWire(f))}\n\n`));
        } catch (e) {
          controller.error(e);
        }
      },
      async cancel() {
        onGone();
        await frames.return(undefined);
      },
    },
    { highWaterMark: 1 },
  );
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', ...headers } });
}

function execIdParam(c: Context<ApiEnv>): string {
  const id = c.req.param('id') ?? '';
  const shown = String(id).slice(0, 80);
  if (!isExecId(id)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not an exec id (exec_…)`, { exec: shown });
  return id;
}

function offsetQuery(c: Context<ApiEnv>, name: string): number | undefined {
  const v = c.req.query(name);
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(v)) throw new CorralError('INVALID_ARGUMENT', `${name} must be a byte offset (a whole number, 0 or more), got '${v.slice(0, 40)}'`, { [name]: v.slice(0, 40) });
  return Number(v);
}

/** Offsets from ?stdout=&stderr=, or from an SSE client's Last-Event-ID (`stdout,stderr`). */
function resumeOffsets(c: Context<ApiEnv>): { stdout: number; stderr: number } {
  const last = c.req.header('last-event-id');
  const m = last === undefined ? null : /^([0-9]{1,15}),([0-9]{1,15})$/.exec(last);
  return { stdout: offsetQuery(c, 'stdout') ?? Number(m?.[1] ?? 0), stderr: offsetQuery(c, 'stderr') ?? Number(m?.[2] ?? 0) };
}

export function registerExecRoutes(app: Hono<ApiEnv>, docs: RouteDocs, execs: ExecsView, count?: StreamCounter): void {
  app.post('/v1/sandboxes/:id/exec', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const scope = scopeOf(c);
    const body = await readJson(c, execRequestSchema);
    if (body.openStdin && body.stdin !== undefined) throw new CorralError('INVALID_ARGUMENT', 'give stdin (bytes) or openStdin (a stream), not both', {});
    if (body.attachStdout !== undefined || body.attachStderr !== undefined) throw new CorralError('INVALID_ARGUMENT', 'attachStdout and attachStderr belong to a created exec (POST /v1/sandboxes/{id}/execs, then start it attached): this exec gives its client both streams', {});
    const streamed = (c.req.header('accept') ?? '').includes('text/event-stream');
    if (body.openStdin && !body.background && !streamed) throw new CorralError('INVALID_ARGUMENT', 'openStdin needs background: true or a streamed exec (Accept: text/event-stream): a collected exec cannot be written to', {});
    const request: StartRequest = {
      ...(body.argv !== undefined ? { argv: body.argv } : {}),
      ...(body.shell !== undefined ? { shell: body.shell } : {}),
      ...(body.cwd !== undefined ? { cwd: body.cwd } : {}),
      ...(body.env !== undefined ? { env: body.env } : {}),
      ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
      ...(body.stdin !== undefined ? { stdin: new Uint8Array(Buffer.from(body.stdin, 'base64')) } : {}),
      ...(body.openStdin ? { openStdin: true } : {}),
      ...(body.tty ? { tty: body.tty } : {}),
      ...(body.user !== undefined ? { user: body.user } : {}),
      ...(body.resume !== undefined ? { resume: body.resume } : {}),
      ...(body.waitForApprovalMs !== undefined ? { approvalWaitMs: body.waitForApprovalMs } : {}),
      background: body.background === true,
    };
    if (body.background) {
      const { info } = execs.start(id, request, scope);
      return c.json(info satisfies ExecRecord, 202, { location: `/v1/execs/${info.id}` });
    }
    // A foreground exec ends with its client: a closed connection cancels it.
    const gone = new AbortController();
    c.req.raw.signal.addEventListener('abort', () => gone.abort(), { once: true });
    // A streamed exec's client owns its output: a slow client slows the command, no byte is dropped.
    const { info, done } = execs.start(id, { ...request, signal: gone.signal, ...(streamed ? { holdForReader: true } : {}) }, scope);
    if (streamed) {
      const frames = execs.frames(info.id, {}, { follow: true, hold: true }, scope);
      // The id comes first, in headers: a client may write stdin or kill before any frame arrives.
      return sseResponse(frames, { stdout: 0, stderr: 0 }, () => gone.abort(), { 'x-corral-exec': info.id, location: `/v1/execs/${info.id}` }, count);
    }
    const ended = await done;
    return c.json(toWire(ended.result!));
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/exec',
    operationId: 'execInSandbox',
    tags: ['execs'],
    summary: 'Run a command in the sandbox: collected (the corral.exec.result envelope), streamed (Accept: text/event-stream: ExecFrame events), or background (202 and the exec)',
    description: "The command's own failure (non-zero exit, timeout, denied by the policy) is in the envelope, with status 200. A collected or streamed exec is cancelled when its client disconnects; a background one runs on (GET /v1/execs/{id}).",
    body: 'ExecRequest',
    responses: { 200: { description: 'The result envelope (collected), or an SSE stream of ExecFrame (streamed).', schema: 'ExecResult' }, 202: { description: 'The background exec, running.', schema: 'ExecRecord' } },
    errors: [403, 404, 409, 413],
  });

  app.post('/v1/sandboxes/:id/execs', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const body = await readJson(c, execRequestSchema);
    if (body.background !== undefined || body.stdin !== undefined) throw new CorralError('INVALID_ARGUMENT', 'a created exec takes its input from openStdin and runs detached once started: leave out background and stdin', {});
    const info = execs.create(id, {
      ...(body.argv !== undefined ? { argv: body.argv } : {}),
      ...(body.shell !== undefined ? { shell: body.shell } : {}),
      ...(body.cwd !== undefined ? { cwd: body.cwd } : {}),
      ...(body.env !== undefined ? { env: body.env } : {}),
      ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
      ...(body.openStdin ? { openStdin: true } : {}),
      ...(body.attachStdout === false ? { attachStdout: false } : {}),
      ...(body.attachStderr === false ? { attachStderr: false } : {}),
      ...(body.tty ? { tty: body.tty } : {}),
      ...(body.user !== undefined ? { user: body.user } : {}),
    }, scopeOf(c));
    return c.json(info satisfies ExecRecord, 201, { location: `/v1/execs/${info.id}` });
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/execs',
    operationId: 'createExec',
    tags: ['execs'],
    summary: 'Create an exec without running it (Docker\'s exec instance flow): state created; POST /v1/execs/{id}/start runs it',
    body: 'ExecRequest',
    responses: { 201: { description: 'The created exec.', schema: 'ExecRecord' } },
    errors: [404, 409],
  });

  app.post('/v1/execs/:id/start', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = execIdParam(c);
    const body = await readJson(c, execStartSchema);
    const scope = scopeOf(c);
    const { info } = execs.startCreated(id, body.tty ? { tty: body.tty } : {}, scope);
    // Attached: the same frames as the exec's output stream, from its start (it runs on if the client goes).
    if ((c.req.header('accept') ?? '').includes('text/event-stream')) {
      const gone = new AbortController();
      const streams = attachedStreams(info);
      return sseResponse(execs.frames(info.id, {}, { follow: true, signal: gone.signal, streams }, scope), { stdout: 0, stderr: 0 }, () => gone.abort(), { 'x-corral-exec': info.id }, count);
    }
    return c.json(info satisfies ExecRecord, 202);
  });
  docs.add({
    method: 'post',
    path: '/v1/execs/:id/start',
    operationId: 'startExec',
    tags: ['execs'],
    summary: 'Start a created exec: detached (202; attach later with the WebSocket or GET /v1/execs/{id}/output), or attached with Accept: text/event-stream (its frames); a start that is refused marks it failed',
    body: 'ExecStart',
    responses: { 202: { description: 'The exec, running.', schema: 'ExecRecord' } },
    errors: [404, 409],
  });

  app.post('/v1/execs/:id/resize', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = execIdParam(c);
    const body = await readJson(c, execStartSchema);
    if (!body.tty) throw new CorralError('INVALID_ARGUMENT', 'give tty: {cols, rows}', {});
    const scope = scopeOf(c);
    execs.resize(id, body.tty.cols, body.tty.rows, scope);
    return c.json(execs.get(id, scope) satisfies ExecRecord);
  });
  docs.add({
    method: 'post',
    path: '/v1/execs/:id/resize',
    operationId: 'resizeExec',
    tags: ['execs'],
    summary: "Resize a running exec's terminal ({tty: {cols, rows}})",
    body: 'ExecStart',
    responses: { 200: { description: 'The exec.', schema: 'ExecRecord' } },
    errors: [404, 409],
  });

  app.get('/v1/sandboxes/:id/execs', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['state']);
    const id = sandboxIdParam(c);
    const state = c.req.query('state');
    let filter = {};
    if (state !== undefined) {
      const parsed = execStateSchema.safeParse(state);
      if (!parsed.success) throw new CorralError('INVALID_ARGUMENT', `state must be one of ${execStateSchema.options.join(', ')}, got '${state.slice(0, 40)}'`, {});
      filter = { state: parsed.data };
    }
    return c.json({ execs: execs.list(id, filter, scopeOf(c)) } satisfies ExecList);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes/:id/execs',
    operationId: 'listExecs',
    tags: ['execs'],
    summary: "A sandbox's execs, oldest first (?state= filters)",
    responses: { 200: { description: 'The execs.', schema: 'ExecList' } },
    errors: [400, 404],
  });

  app.get('/v1/execs/:id', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, []);
    return c.json(execs.get(execIdParam(c), scopeOf(c)) satisfies ExecRecord);
  });
  docs.add({
    method: 'get',
    path: '/v1/execs/:id',
    operationId: 'getExec',
    tags: ['execs'],
    summary: 'Inspect an exec: state, pid, exit code, signal, times, output sizes, and its result envelope once ended',
    responses: { 200: { description: 'The exec.', schema: 'ExecRecord' } },
    errors: [400, 404],
  });

  app.post('/v1/execs/:id/wait', async (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, []);
    const id = execIdParam(c);
    const body = await readJson(c, execWaitSchema);
    return c.json((await execs.wait(id, { timeoutMs: body.timeoutMs ?? WAIT_DEFAULT_MS, signal: c.req.raw.signal }, scopeOf(c))) satisfies ExecRecord);
  });
  docs.add({
    method: 'post',
    path: '/v1/execs/:id/wait',
    operationId: 'waitExec',
    tags: ['execs'],
    summary: 'Wait until the exec ends, or timeoutMs passes (then it answers with state running): the exec',
    body: 'ExecWait',
    responses: { 200: { description: 'The exec.', schema: 'ExecRecord' } },
    errors: [400, 404],
  });

  app.post('/v1/execs/:id/kill', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, []);
    const id = execIdParam(c);
    const body = await readJson(c, execKillSchema);
    return c.json(execs.kill(id, body.signal ?? 'KILL', scopeOf(c)) satisfies ExecRecord);
  });
  docs.add({
    method: 'post',
    path: '/v1/execs/:id/kill',
    operationId: 'killExec',
    tags: ['execs'],
    summary: 'Send a signal to a running exec (default KILL; TERM and KILL end the whole tree, others go to the command)',
    body: 'ExecKill',
    responses: { 200: { description: 'The exec (still running until the signal takes effect).', schema: 'ExecRecord' } },
    errors: [400, 404, 409],
  });

  app.post('/v1/execs/:id/stdin', async (c) => {
    requireScope(c, 'exec');
    onlyQuery(c, ['eof']);
    const id = execIdParam(c);
    const eof = boolQuery(c, 'eof') ?? false;
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    const scope = scopeOf(c);
    if (bytes.length > 0) execs.writeStdin(id, bytes, scope);
    if (eof) execs.closeStdin(id, scope);
    return c.body(null, 204);
  });
  docs.add({
    method: 'post',
    path: '/v1/execs/:id/stdin',
    operationId: 'writeExecStdin',
    tags: ['execs'],
    summary: 'Write the raw request body to the stdin of an exec started with openStdin; ?eof=true closes it after',
    responses: { 204: { description: 'Written.' } },
    errors: [400, 404, 409, 413],
  });

  app.get('/v1/execs/:id/output', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['stdout', 'stderr', 'follow']);
    const id = execIdParam(c);
    const scope = scopeOf(c);
    const from = resumeOffsets(c);
    const follow = boolQuery(c, 'follow') ?? true;
    execs.get(id, scope);
    const gone = new AbortController();
    const frames = execs.frames(id, from, { follow, signal: gone.signal }, scope);
    return sseResponse(frames, from, () => gone.abort(), {}, count);
  });
  docs.add({
    method: 'get',
    path: '/v1/execs/:id/output',
    operationId: 'execOutput',
    tags: ['execs'],
    summary: "An exec's output as Server-Sent Events (ExecFrame): the kept bytes from ?stdout=&stderr= offsets (or Last-Event-ID) replayed, then the live tail until it ends (?follow=false: only what exists now)",
    description: 'Each event id is `stdoutOffset,stderrOffset` reached, so a client that reconnects with Last-Event-ID misses nothing still kept; bytes no longer kept come as a gap frame.',
    responses: { 200: { description: 'text/event-stream of ExecFrame.' } },
    errors: [400, 404],
  });
}
