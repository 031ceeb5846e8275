// Sandbox routes: create, list, get and destroy. Handlers parse and validate, call the sandbox
// service, and shape the answer; the service owns every rule.
import type { Context, Hono } from 'hono';
import { isId, sandboxStateSchema, sandboxCreateSchema, type Sandbox, type SandboxList } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import type { ExecSessions } from '../services/exec-sessions.ts';
import { parseLabelFilter, type SandboxService } from '../services/sandbox-service.ts';
import { requireScope, scopeOf } from './auth-middleware.ts';
import { readJson } from './api-middleware.ts';
import type { ApiEnv } from './api-types.ts';
import type { RouteDocs } from './openapi.ts';

export type SandboxesView = Pick<SandboxService, 'create' | 'list' | 'get'>;

/** The `:id` path parameter, refused before any lookup unless it is a well-formed sbx_ id. */
export function sandboxIdParam(c: Context<ApiEnv>): string {
  const id = c.req.param('id') ?? '';
  const shown = id.slice(0, 80);
  if (!isId('sbx', id)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not a sandbox id: expected sbx_ followed by 26 base32 characters`, { sandbox: shown });
  return id;
}

export function onlyQuery(c: Context<ApiEnv>, allowed: string[]): void {
  for (const key of Object.keys(c.req.queries()))
    if (!allowed.includes(key)) throw new CorralError('INVALID_ARGUMENT', `unknown query parameter '${key.slice(0, 40)}'${allowed.length ? `: use ${allowed.join(', ')}` : ''}`, { parameter: key.slice(0, 40) });
}

export function registerSandboxRoutes(app: Hono<ApiEnv>, docs: RouteDocs, sandboxes: SandboxesView, execs: Pick<ExecSessions, 'destroySandbox'>): void {
  app.post('/v1/sandboxes', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const spec = await readJson(c, sandboxCreateSchema);
    return c.json(sandboxes.create(spec, scopeOf(c)) satisfies Sandbox, 201);
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes',
    operationId: 'createSandbox',
    tags: ['sandboxes'],
    summary: 'Create a sandbox: a vault (by default its own fork) and how commands run there',
    description: 'Starts no process. A policy is a preset name: policy files are not accepted over the API.',
    body: 'SandboxCreate',
    responses: { 201: { description: 'The new sandbox, ready.', schema: 'Sandbox' } },
    errors: [404, 409],
  });

  app.get('/v1/sandboxes', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['state', 'label']);
    const states = c.req.queries('state') ?? [];
    if (states.length > 1) throw new CorralError('INVALID_ARGUMENT', 'give state at most once', {});
    let state: Sandbox['state'] | undefined;
    if (states[0] !== undefined) {
      const parsed = sandboxStateSchema.safeParse(states[0]);
      if (!parsed.success) throw new CorralError('INVALID_ARGUMENT', `state must be ready, paused or destroyed, got '${states[0].slice(0, 40)}'`, { state: states[0].slice(0, 40) });
      state = parsed.data;
    }
    const labels: Record<string, string> = {};
    for (const l of c.req.queries('label') ?? []) Object.assign(labels, parseLabelFilter(l));
    return c.json({ sandboxes: sandboxes.list({ ...(state ? { state } : {}), label: labels }, scopeOf(c)) } satisfies SandboxList);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes',
    operationId: 'listSandboxes',
    tags: ['sandboxes'],
    summary: 'List sandboxes, oldest first: the live ones, or those in ?state=; ?label=key=value (repeatable) keeps those with every label',
    responses: { 200: { description: 'The sandboxes.', schema: 'SandboxList' } },
  });

  app.get('/v1/sandboxes/:id', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, []);
    return c.json(sandboxes.get(sandboxIdParam(c), scopeOf(c)) satisfies Sandbox);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes/:id',
    operationId: 'getSandbox',
    tags: ['sandboxes'],
    summary: 'A sandbox by id (a destroyed one too; an expired one is 404)',
    responses: { 200: { description: 'The sandbox.', schema: 'Sandbox' } },
    errors: [400, 404],
  });

  app.delete('/v1/sandboxes/:id', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, ['keepFork']);
    const id = sandboxIdParam(c);
    const keep = c.req.query('keepFork');
    if (keep !== undefined && keep !== 'true' && keep !== 'false') throw new CorralError('INVALID_ARGUMENT', `keepFork must be true or false, got '${keep.slice(0, 40)}'`, {});
    return c.json((await execs.destroySandbox(id, { keepFork: keep === 'true' }, scopeOf(c))) satisfies Sandbox);
  });
  docs.add({
    method: 'delete',
    path: '/v1/sandboxes/:id',
    operationId: 'destroySandbox',
    tags: ['sandboxes'],
    summary: 'Destroy a sandbox: its running execs are cancelled first; its own vault (the fork) is deleted unless ?keepFork=true. Idempotent',
    responses: { 200: { description: 'The destroyed sandbox (its row is kept).', schema: 'Sandbox' } },
    errors: [400, 404],
  });
}
