// History, diff and audit routes: what the dashboard's timeline and audit pages read. A sandbox's
// timeline is its vault's commits (each with its change summary and checkpoints), a diff compares
// any two versions, and the audit log is the hash-chained record of every change, with its check.
import type { Context, Hono } from 'hono';
import type { AuditList, AuditRecordWire, AuditVerificationWire, DiffWire, HistoryEntry, HistoryWire } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import type { HistoryService } from '../services/history-service.ts';
import type { SandboxService } from '../services/sandbox-service.ts';
import type { AuditFilter, AuditLog, AuditRecord } from '../store/audit-log.ts';
import type { CorralStore } from '../store/corral-store.ts';
import type { ApiEnv } from './api-types.ts';
import { requireScope, scopeOf } from './auth-middleware.ts';
import type { RouteDocs } from './openapi.ts';
import { onlyQuery, oneQuery } from './query-params.ts';
import { sandboxIdParam } from './sandbox-routes.ts';

export interface HistoryView {
  sandboxes: Pick<SandboxService, 'get'>;
  history: Pick<HistoryService, 'log' | 'diff' | 'diffCommits'>;
  store: Pick<CorralStore, 'getVault' | 'getCommit' | 'listCheckpoints'> & { audit: Pick<AuditLog, 'list' | 'verify'> };
}

/** Files of one diff that get a patch, and the bytes of patch text in one answer: beyond them, `truncated`. */
export const DIFF_PATCH_FILES = 200;
export const DIFF_PATCH_BYTES = 4 << 20;
const MAX_HISTORY = 1000;
const MAX_AUDIT = 10_000;
// A ref as the store reads it: HEAD, HEAD~N, HEAD^, a checkpoint name or a commit id prefix.
const REF = /^[A-Za-z0-9][A-Za-z0-9._~^-]{0,127}$/;

function intQuery(c: Context<ApiEnv>, name: string, min: number, max: number, fallback: number): number {
  const v = oneQuery(c, name);
  if (v === undefined) return fallback;
  if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max)
    throw new CorralError('INVALID_ARGUMENT', `${name} must be a whole number from ${min} to ${max}, got '${v.slice(0, 40)}'`, { parameter: name });
  return Number(v);
}

function refQuery(c: Context<ApiEnv>, name: string, fallback?: string): string {
  const v = oneQuery(c, name) ?? fallback;
  if (v === undefined) throw new CorralError('INVALID_ARGUMENT', `give ${name}: a checkpoint name, a commit id, HEAD or HEAD~N`, { parameter: name });
  if (!REF.test(v)) throw new CorralError('INVALID_ARGUMENT', `${name} must be a checkpoint name, a commit id, HEAD or HEAD~N; got '${v.slice(0, 40)}'`, { parameter: name });
  return v;
}

function toAuditWire(r: AuditRecord): AuditRecordWire {
  return { seq: r.seq, at: new Date(r.ts).toISOString(), actor: r.actor, vault: r.vault, op: r.op, target: r.target, details: r.details, result: r.result, hash: r.hash };
}

/** Whether `corral` has what these routes need (the opened Corral does; the tests' partial ones may not). */
function historyView(corral: object): HistoryView | undefined {
  const v = corral as Partial<HistoryView>;
  return v.sandboxes && v.history && v.store && 'audit' in v.store ? (v as HistoryView) : undefined;
}

/** Registers the routes when `corral` has sandboxes, history and a store; else nothing. */
export function registerHistoryRoutes(app: Hono<ApiEnv>, docs: RouteDocs, corral: object): void {
  const view = historyView(corral);
  if (!view) return;
  const { sandboxes, history, store } = view;

  app.get('/v1/sandboxes/:id/history', (c) => {
    requireScope(c, 'sandboxes:read');
    onlyQuery(c, ['limit']);
    const limit = intQuery(c, 'limit', 1, MAX_HISTORY, 100);
    const sb = sandboxes.get(sandboxIdParam(c), scopeOf(c));
    const vault = store.getVault(sb.vault);
    const checkpoints = store.listCheckpoints(vault);
    const byCommit = new Map<string, string[]>();
    for (const cp of checkpoints) byCommit.set(cp.commit, [...(byCommit.get(cp.commit) ?? []), cp.name]);
    const log = history.log(vault.name, { limit: limit + 1 });
    const commits: HistoryEntry[] = log.slice(0, limit).map((cm) => {
      const parentTree = cm.parent ? store.getCommit(cm.parent).tree : undefined;
      const summary = history.diffCommits(parentTree, cm.tree, cm.parent ?? '(none)', cm.id, false).summary;
      return {
        id: cm.id,
        parent: cm.parent,
        message: cm.message,
        origin: cm.origin,
        actor: cm.actor,
        createdAt: new Date(cm.createdAt).toISOString(),
        files: cm.files,
        size: cm.size,
        head: cm.id === vault.head,
        checkpoints: byCommit.get(cm.id) ?? [],
        summary,
      };
    });
    const cps = checkpoints.map((cp) => ({ name: cp.name, commit: cp.commit, message: cp.message, createdAt: new Date(cp.createdAt).toISOString() }));
    return c.json({ sandbox: sb.id, vault: vault.name, commits, checkpoints: cps, truncated: log.length > limit } satisfies HistoryWire);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes/:id/history',
    operationId: 'sandboxHistory',
    tags: ['history'],
    summary: "The sandbox's workspace timeline: its vault's commits from the head back, each with its origin, change summary and checkpoints",
    query: [{ name: 'limit', description: 'Commits to return, 1-1000 (default 100).', type: 'integer' }],
    responses: { 200: { description: 'The timeline.', schema: 'History' } },
    errors: [400, 404],
  });

  app.get('/v1/sandboxes/:id/diff', (c) => {
    // Patches carry file contents: the same scope as reading files.
    requireScope(c, 'files');
    onlyQuery(c, ['from', 'to', 'path']);
    const sb = sandboxes.get(sandboxIdParam(c), scopeOf(c));
    const to = refQuery(c, 'to', 'HEAD');
    // Without from: the parent of to (to itself for a vault's first commit: no changes).
    const fromGiven = oneQuery(c, 'from') !== undefined;
    const toCommit = history.log(sb.vault, { ref: to, limit: 1 })[0];
    const from = fromGiven ? refQuery(c, 'from') : (toCommit?.parent ?? to);
    const path = oneQuery(c, 'path');
    const listed = history.diff(sb.vault, from, to, path !== undefined ? { path } : {});
    let budget = DIFF_PATCH_BYTES;
    let truncated = false;
    const changes: DiffWire['changes'] = listed.changes.map((ch, i) => {
      if (i >= DIFF_PATCH_FILES || budget <= 0) {
        truncated = true;
        return ch;
      }
      const one = history.diff(sb.vault, listed.from, listed.to, { path: ch.path, patch: true }).changes.find((x) => x.path === ch.path && x.change === ch.change);
      if (one?.patch !== undefined) {
        if (one.patch.length > budget) {
          truncated = true;
          return ch;
        }
        budget -= one.patch.length;
      }
      return one ?? ch;
    });
    return c.json({ from: listed.from, to: listed.to, changes, summary: listed.summary, truncated } satisfies DiffWire);
  });
  docs.add({
    method: 'get',
    path: '/v1/sandboxes/:id/diff',
    operationId: 'sandboxDiff',
    tags: ['history'],
    summary: "The changes between two versions of the sandbox's vault, with unified patches of text files",
    description: 'from and to are checkpoint names, commit ids (or unique prefixes), HEAD or HEAD~N. Patches are capped at 200 files and 4 MiB (truncated says so).',
    query: [
      { name: 'from', description: 'The older version (default: the parent of to).' },
      { name: 'to', description: 'The newer version (default HEAD).' },
      { name: 'path', description: 'Only changes at or below this path.' },
    ],
    responses: { 200: { description: 'The diff.', schema: 'Diff' } },
    errors: [400, 404],
  });

  app.get('/v1/audit', (c) => {
    requireScope(c, 'admin');
    onlyQuery(c, ['op', 'sandbox', 'vault', 'since', 'limit']);
    const filter: AuditFilter = { limit: intQuery(c, 'limit', 1, MAX_AUDIT, 200) };
    const op = oneQuery(c, 'op');
    if (op !== undefined) {
      if (!/^[a-z][a-z._-]{0,63}$/.test(op)) throw new CorralError('INVALID_ARGUMENT', `op must be an operation name such as exec or approval.deny, got '${op.slice(0, 40)}'`, { parameter: 'op' });
      filter.op = op;
    }
    const since = oneQuery(c, 'since');
    if (since !== undefined) {
      const t = Date.parse(since);
      if (!Number.isFinite(t)) throw new CorralError('INVALID_ARGUMENT', `since must be an ISO 8601 time, got '${since.slice(0, 40)}'`, { parameter: 'since' });
      filter.since = t;
    }
    const scope = scopeOf(c);
    const sandbox = oneQuery(c, 'sandbox');
    const vault = oneQuery(c, 'vault');
    if (sandbox !== undefined && vault !== undefined) throw new CorralError('INVALID_ARGUMENT', 'give sandbox or vault, not both', {});
    if (sandbox !== undefined) filter.vault = sandboxes.get(sandbox, scope).vault;
    else if (vault !== undefined) {
      // A vault by name only for the owner: a key names it through one of its sandboxes.
      if (scope.tenant !== null) throw new CorralError('PERMISSION_DENIED', 'an API key reads the audit log of its own sandboxes: use ?sandbox=ID', { scope: 'admin' });
      filter.vault = store.getVault(vault).name;
    }
    // The log covers every tenant: a key (even admin) sees it only through one of its sandboxes.
    if (scope.tenant !== null && filter.vault === undefined)
      throw new CorralError('PERMISSION_DENIED', "the whole audit log covers every tenant: an API key reads its own sandboxes' records with ?sandbox=ID", { scope: 'admin' });
    return c.json({ records: store.audit.list(filter).map(toAuditWire) } satisfies AuditList);
  });
  docs.add({
    method: 'get',
    path: '/v1/audit',
    operationId: 'listAudit',
    tags: ['audit'],
    summary: 'The audit log, oldest first: the latest limit records matching the filters',
    description: 'The machine owner reads all of it; an admin key only the records of one of its sandboxes (?sandbox=ID).',
    query: [
      { name: 'op', description: 'Only this operation (exec, exec.commit, checkpoint.save, approval.deny, ...).' },
      { name: 'sandbox', description: "Only the records of this sandbox's vault." },
      { name: 'vault', description: 'Only the records of this vault (the owner only).' },
      { name: 'since', description: 'Only records at or after this ISO 8601 time.' },
      { name: 'limit', description: 'Records to return, 1-10000 (default 200).', type: 'integer' },
    ],
    responses: { 200: { description: 'The records.', schema: 'AuditList' } },
    errors: [400, 403, 404],
  });

  app.get('/v1/audit/verify', (c) => {
    requireScope(c, 'admin');
    onlyQuery(c, []);
    if (scopeOf(c).tenant !== null) throw new CorralError('PERMISSION_DENIED', "verifying the audit chain reads every tenant's records: the machine owner does it (corral audit verify)", { scope: 'admin' });
    return c.json(store.audit.verify() satisfies AuditVerificationWire);
  });
  docs.add({
    method: 'get',
    path: '/v1/audit/verify',
    operationId: 'verifyAudit',
    tags: ['audit'],
    summary: "Walks the whole audit chain and reports every place where it does not hold (the machine owner only)",
    responses: { 200: { description: 'The verification.', schema: 'AuditVerification' } },
    errors: [403],
  });
}
