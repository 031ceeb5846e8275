// Approval routes: list, get, approve and deny the commands the policy sent to a person. The
// ApprovalService owns every rule; a tenant sees only the approvals of its sandboxes' vaults, and
// who answered (owner, or key:<id>) is named in the approval and its audit record.
import type { Context, Hono } from 'hono';
import { approvalApproveSchema, approvalDenySchema, approvalStateSchema, type ApprovalList, type ApprovalWire } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import type { Approval, ApprovalService } from '../services/approval-service.ts';
import { readJson } from './api-middleware.ts';
import type { ApiEnv } from './api-types.ts';
import { actorOf, requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';
import { onlyQuery } from './query-params.ts';

export type ApprovalsView = Pick<ApprovalService, 'list' | 'get' | 'approve' | 'deny' | 'sandboxOf'>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The wire form of an approval: ISO times, and the sandbox working on its vault. */
export function toWire(a: Approval, sandbox: string | null): ApprovalWire {
  return {
    id: a.id,
    state: a.state,
    vault: a.vault,
    sandbox,
    command: a.command,
    reason: a.reason,
    decision: a.decision,
    request: a.request,
    requester: a.requester,
    createdAt: new Date(a.createdAt).toISOString(),
    expiresAt: new Date(a.expiresAt).toISOString(),
    answeredBy: a.answeredBy,
    answeredAt: iso(a.answeredAt),
    answerReason: a.answerReason,
  };
}

function idParam(c: Context<ApiEnv>): string {
  // The service checks the form (apr_ and 16 hex digits) before any lookup.
  return c.req.param('id') ?? '';
}

/** Whether the request has a body of at least one byte (hono keeps what it read for readJson). */
async function hasBody(c: Context<ApiEnv>): Promise<boolean> {
  if (!c.req.raw.body) return false;
  return (await c.req.arrayBuffer()).byteLength > 0;
}

export function registerApprovalRoutes(app: Hono<ApiEnv>, docs: RouteDocs, approvals: ApprovalsView): void {
  const wire = (a: Approval) => toWire(a, approvals.sandboxOf(a.vault)?.id ?? null);

  app.get('/v1/approvals', (c) => {
    requireScope(c, 'approvals');
    onlyQuery(c, ['state']);
    const states = c.req.queries('state') ?? [];
    if (states.length > 1) throw new CorralError('INVALID_ARGUMENT', 'give state at most once', {});
    let state: ApprovalWire['state'] | undefined;
    if (states[0] !== undefined) {
      const parsed = approvalStateSchema.safeParse(states[0]);
      if (!parsed.success) throw new CorralError('INVALID_ARGUMENT', `state must be pending, approved, denied, expired or used, got '${states[0].slice(0, 40)}'`, { state: states[0].slice(0, 40) });
      state = parsed.data;
    }
    return c.json({ approvals: approvals.list(state ? { state } : {}, scopeOf(c)).map(wire) } satisfies ApprovalList);
  });
  docs.add({
    method: 'get',
    path: '/v1/approvals',
    operationId: 'listApprovals',
    tags: ['approvals'],
    summary: 'List approvals, oldest first: all of them, or those in ?state=pending|approved|denied|expired|used',
    description: 'A pending approval past its deadline is expired before the list is read. An API key sees the approvals of its tenant\'s sandboxes only.',
    responses: { 200: { description: 'The approvals.', schema: 'ApprovalList' } },
    errors: [400],
  });

  app.get('/v1/approvals/:id', (c) => {
    requireScope(c, 'approvals');
    onlyQuery(c, []);
    return c.json(wire(approvals.get(idParam(c), scopeOf(c))) satisfies ApprovalWire);
  });
  docs.add({
    method: 'get',
    path: '/v1/approvals/:id',
    operationId: 'getApproval',
    tags: ['approvals'],
    summary: 'An approval by id',
    responses: { 200: { description: 'The approval.', schema: 'Approval' } },
    errors: [400, 404],
  });

  app.post('/v1/approvals/:id/approve', async (c) => {
    requireScope(c, 'approvals');
    onlyQuery(c, []);
    const id = idParam(c);
    const body = (await hasBody(c)) ? await readJson(c, approvalApproveSchema) : {};
    const a = approvals.approve(id, body.reason ?? '', { caller: { actor: actorOf(c), origin: 'api' }, scope: scopeOf(c) });
    return c.json(wire(a) satisfies ApprovalWire);
  });
  docs.add({
    method: 'post',
    path: '/v1/approvals/:id/approve',
    operationId: 'approveApproval',
    tags: ['approvals'],
    summary: 'Approve a pending approval (the body, with an optional reason, may be left out)',
    description: 'The exec it holds runs when resumed (corral exec --resume ID), or at once when its exec waits for the answer. Publishes approval.answered.',
    body: 'ApprovalApprove',
    responses: { 200: { description: 'The approved approval.', schema: 'Approval' } },
    errors: [404, 409],
  });

  app.post('/v1/approvals/:id/deny', async (c) => {
    requireScope(c, 'approvals');
    onlyQuery(c, []);
    const id = idParam(c);
    const body = await readJson(c, approvalDenySchema);
    const a = approvals.deny(id, body.reason, { caller: { actor: actorOf(c), origin: 'api' }, scope: scopeOf(c) });
    return c.json(wire(a) satisfies ApprovalWire);
  });
  docs.add({
    method: 'post',
    path: '/v1/approvals/:id/deny',
    operationId: 'denyApproval',
    tags: ['approvals'],
    summary: 'Deny a pending approval, with a reason',
    description: 'Publishes approval.answered.',
    body: 'ApprovalDeny',
    responses: { 200: { description: 'The denied approval.', schema: 'Approval' } },
    errors: [404, 409],
  });
}
