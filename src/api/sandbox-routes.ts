// Sandbox routes: create, list, get and destroy; and the lifecycle: extend, pause, resume,
// checkpoints. Handlers parse and validate, call the sandbox service (or the lifecycle), and shape
// the answer; the services own every rule.
import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import {
  checkpointCreateSchema,
  checkpointRestoreSchema,
  emptyBodySchema,
  isId,
  sandboxExtendSchema,
  sandboxStateSchema,
  sandboxCreateSchema,
  type CheckpointList,
  type CheckpointRestoreResult,
  type CheckpointWire,
  type Sandbox,
  type SandboxList,
} from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import { validateVaultName } from '../protocol/paths.ts';
import type { ExecSessions } from '../services/exec-sessions.ts';
import type { SandboxLifecycle } from '../services/sandbox-lifecycle.ts';
import { parseLabelFilter, type SandboxService } from '../services/sandbox-service.ts';
import { requireScope, scopeOf } from './auth-middleware.ts';
import { readJson } from './api-middleware.ts';
import type { ApiEnv } from './api-types.ts';
import { onlyQuery } from './query-params.ts';
import type { RouteDocs } from './openapi.ts';

export type SandboxesView = Pick<SandboxService, 'create' | 'list' | 'get'>;
export type LifecycleView = Pick<SandboxLifecycle, 'destroy' | 'extend' | 'pause' | 'resume' | 'saveCheckpoint' | 'listCheckpoints' | 'deleteCheckpoint' | 'restoreCheckpoint'>;

/**
 * The `:id` path parameter: a sandbox's id, or the name of a live one (connect by name), refused
 * before any lookup unless it is a well-formed sbx_ id or a valid name.
 */
export function sandboxIdParam(c: Context<ApiEnv>): string {
  const id = c.req.param('id') ?? '';
  const shown = id.slice(0, 80);
  if (isId('sbx', id)) return id;
  if (shown.startsWith('sbx_')) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not a sandbox id: expected sbx_ followed by 26 base32 characters`, { sandbox: shown });
  validateVaultName(id);
  return id;
}

/** `lifecycle`, when given, destroys (a paused sandbox's processes are continued to end promptly). */
export function registerSandboxRoutes(app: Hono<ApiEnv>, docs: RouteDocs, sandboxes: SandboxesView, execs: Pick<ExecSessions, 'destroySandbox'>, lifecycle?: Pick<SandboxLifecycle, 'destroy'>): void {
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
    const destroy = lifecycle ? lifecycle.destroy.bind(lifecycle) : execs.destroySandbox.bind(execs);
    return c.json((await destroy(id, { keepFork: keep === 'true' }, scopeOf(c))) satisfies Sandbox);
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

/** A JSON body that may be left out (empty): then `{}` is validated instead. */
async function optionalJson<S extends z.ZodType>(c: Context<ApiEnv>, schema: S): Promise<z.output<S>> {
  // hono keeps the body it read, so readJson reads the same bytes again.
  const bytes = await c.req.arrayBuffer();
  return bytes.byteLength === 0 ? schema.parse({}) : readJson(c, schema);
}

/** The `:name` path parameter of a checkpoint (its rules are checked by the service: INVALID_NAME). */
function checkpointParam(c: Context<ApiEnv>): string {
  return c.req.param('name') ?? '';
}

export function registerLifecycleRoutes(app: Hono<ApiEnv>, docs: RouteDocs, lifecycle: LifecycleView): void {
  app.post('/v1/sandboxes/:id/extend', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const body = await readJson(c, sandboxExtendSchema);
    return c.json(lifecycle.extend(id, body.ttlSeconds, scopeOf(c)) satisfies Sandbox);
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/extend',
    operationId: 'extendSandbox',
    tags: ['sandboxes'],
    summary: 'Set a new lifetime: the sandbox expires ttlSeconds from now (one without a TTL gets one)',
    body: 'SandboxExtend',
    responses: { 200: { description: 'The sandbox with its new expiresAt.', schema: 'Sandbox' } },
    errors: [400, 404, 409],
  });

  app.post('/v1/sandboxes/:id/pause', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    await optionalJson(c, emptyBodySchema);
    return c.json((await lifecycle.pause(id, scopeOf(c))) satisfies Sandbox);
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/pause',
    operationId: 'pauseSandbox',
    tags: ['sandboxes'],
    summary: 'Pause: every process of the running execs is stopped (SIGSTOP) and no exec may start (409 SANDBOX_STATE) until resumed. Idempotent',
    description: 'Exec timeouts keep running while paused; a cancelled or killed exec still ends. The TTL keeps running too.',
    responses: { 200: { description: 'The sandbox, paused.', schema: 'Sandbox' } },
    errors: [400, 404, 409],
  });

  app.post('/v1/sandboxes/:id/resume', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    await optionalJson(c, emptyBodySchema);
    return c.json((await lifecycle.resume(id, scopeOf(c))) satisfies Sandbox);
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/resume',
    operationId: 'resumeSandbox',
    tags: ['sandboxes'],
    summary: 'Resume a paused sandbox (paused by a request or by its idle timeout): the processes continue (SIGCONT), execs may start. Idempotent',
    responses: { 200: { description: 'The sandbox, ready.', schema: 'Sandbox' } },
    errors: [400, 404, 409],
  });

  app.post('/v1/sandboxes/:id/checkpoints', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const body = await optionalJson(c, checkpointCreateSchema);
    const options = { ...(body.name !== undefined ? { name: body.name } : {}), ...(body.message !== undefined ? { message: body.message } : {}) };
    return c.json(lifecycle.saveCheckpoint(id, options, scopeOf(c)) satisfies CheckpointWire, 201);
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/checkpoints',
    operationId: 'saveCheckpoint',
    tags: ['checkpoints'],
    summary: "Save a checkpoint of the sandbox's vault (its head now; O(1)). The body may be empty",
    body: 'CheckpointCreate',
    responses: { 201: { description: 'The checkpoint.', schema: 'Checkpoint' } },
    errors: [400, 404, 409],
  });

  app.get('/v1/sandboxes/:id/checkpoints', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, []);
    return c.json({ checkpoints: lifecycle.listCheckpoints(sandboxIdParam(c), scopeOf(c)) } satisfies CheckpointList);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes/:id/checkpoints',
    operationId: 'listCheckpoints',
    tags: ['checkpoints'],
    summary: "The checkpoints of the sandbox's vault, oldest first",
    responses: { 200: { description: 'The checkpoints.', schema: 'CheckpointList' } },
    errors: [400, 404, 409],
  });

  app.delete('/v1/sandboxes/:id/checkpoints/:name', (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    return c.json(lifecycle.deleteCheckpoint(id, checkpointParam(c), scopeOf(c)) satisfies CheckpointWire);
  });
  docs.add({
    method: 'delete',
    path: '/v1/sandboxes/:id/checkpoints/:name',
    operationId: 'deleteCheckpoint',
    tags: ['checkpoints'],
    summary: 'Delete a checkpoint (the pointer; its commit stays in the history)',
    responses: { 200: { description: 'The deleted checkpoint.', schema: 'Checkpoint' } },
    errors: [400, 404, 409],
  });

  app.post('/v1/sandboxes/:id/checkpoints/:name/restore', async (c) => {
    requireScope(c, 'sandboxes:write');
    onlyQuery(c, []);
    const id = sandboxIdParam(c);
    const body = await optionalJson(c, checkpointRestoreSchema);
    return c.json((await lifecycle.restoreCheckpoint(id, checkpointParam(c), { cancelExecs: body.cancelExecs === true }, scopeOf(c))) satisfies CheckpointRestoreResult);
  });
  docs.add({
    method: 'post',
    path: '/v1/sandboxes/:id/checkpoints/:name/restore',
    operationId: 'restoreCheckpoint',
    tags: ['checkpoints'],
    summary: "Make the vault's files the checkpoint's, as a new commit (the state before stays reachable: previous)",
    description: 'Refused with 409 SANDBOX_STATE (details.execs) while execs run, unless cancelExecs is true: they are cancelled first. The body may be empty.',
    body: 'CheckpointRestore',
    responses: { 200: { description: 'What was restored.', schema: 'CheckpointRestoreResult' } },
    errors: [400, 404, 409],
  });
}
