// Exec routes: run a collected command in a sandbox and read a recorded exec back.
import type { Hono } from 'hono';
import { execRequestSchema, isExecId, type ExecRecord, type ExecResultEnvelope } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import type { ExecResult } from '../protocol/exec-result.ts';
import type { SandboxService } from '../services/sandbox-service.ts';
import { readJson } from './api-middleware.ts';
import type { ApiEnv } from './api-types.ts';
import type { RouteDocs } from './openapi.ts';
import { sandboxIdParam } from './sandbox-routes.ts';

export type ExecsView = Pick<SandboxService, 'exec' | 'getExec'>;

// The exec layer's envelope must fit the wire schema: the compiler checks it here.
const toWire = (r: ExecResult): ExecResultEnvelope => r;

export function registerExecRoutes(app: Hono<ApiEnv>, docs: RouteDocs, execs: ExecsView): void {
  app.post('/v1/sandboxes/:id/exec', async (c) => {
    const id = sandboxIdParam(c);
    const body = await readJson(c, execRequestSchema);
    if (body.background) throw new CorralError('INVALID_ARGUMENT', 'background execs are not supported yet: leave out background (collected execs answer with the result envelope)', { background: true });
    const result = await execs.exec(id, {
      ...(body.argv !== undefined ? { argv: body.argv } : {}),
      ...(body.shell !== undefined ? { shell: body.shell } : {}),
      ...(body.cwd !== undefined ? { cwd: body.cwd } : {}),
      ...(body.env !== undefined ? { env: body.env } : {}),
      ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
      ...(body.stdin !== undefined ? { stdin: new Uint8Array(Buffer.from(body.stdin, 'base64')) } : {}),
    });
    return c.json(toWire(result));
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/exec',
    operationId: 'execInSandbox',
    tags: ['execs'],
    summary: 'Run a command in the sandbox and wait for it: the corral.exec.result envelope',
    description: 'The command\'s own failure (non-zero exit, timeout, denied by the policy) is in the envelope, with status 200. background: true is refused for now.',
    body: 'ExecRequest',
    responses: { 200: { description: 'The result envelope (also kept: GET /v1/execs/{id}).', schema: 'ExecResult' } },
    errors: [404, 409],
  });

  app.get('/v1/execs/:id', (c) => {
    const id = c.req.param('id');
    const shown = id.slice(0, 80);
    if (!isExecId(id)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not an exec id (exec_…)`, { exec: shown });
    return c.json(execs.getExec(id) satisfies ExecRecord);
  });
  docs.add({
    method: 'get',
    path: '/v1/execs/:id',
    operationId: 'getExec',
    tags: ['execs'],
    summary: 'A recorded exec: its sandbox, state and result envelope',
    responses: { 200: { description: 'The exec.', schema: 'ExecRecord' } },
    errors: [400, 404],
  });
}
