// Approvals: a command the policy sent to a person. Persisted, so an exec can wait for the answer
// or return `pending` and be resumed later (`corral exec --resume ID`); expired after a deadline;
// every request and answer is an audit record naming who answered and when, and an event
// (approval.requested, approval.answered) on the bus when one is given.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorralError } from '../protocol/errors.ts';
import type { Caller, CorralStore } from '../store/corral-store.ts';
import type { ServiceDeps } from './corral.ts';
import type { EventBus } from './event-bus.ts';
import type { Scope } from './sandbox-service.ts';

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'used';

export interface Approval<R = Record<string, unknown>> {
  id: string;
  vault: string;
  command: string;
  request: R;
  decision: Record<string, unknown>;
  reason: string;
  requester: string;
  state: ApprovalState;
  createdAt: number;
  expiresAt: number;
  answeredBy: string | null;
  answeredAt: number | null;
  answerReason: string | null;
}

interface ApprovalRow {
  id: string;
  vault: string;
  command: string;
  request: string;
  decision: string;
  reason: string;
  requester: string;
  state: ApprovalState;
  created_at: number;
  expires_at: number;
  answered_by: string | null;
  answered_at: number | null;
  answer_reason: string | null;
}

function toApproval(r: ApprovalRow): Approval {
  return {
    id: r.id,
    vault: r.vault,
    command: r.command,
    request: JSON.parse(r.request) as Record<string, unknown>,
    decision: JSON.parse(r.decision) as Record<string, unknown>,
    reason: r.reason,
    requester: r.requester,
    state: r.state,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    answeredBy: r.answered_by,
    answeredAt: r.answered_at,
    answerReason: r.answer_reason,
  };
}

export const DEFAULT_APPROVAL_TTL_MS = 60 * 60 * 1000;
const ID = /^apr_[0-9a-f]{16}$/;
const OWNER: Scope = { tenant: null };

export interface ApprovalServiceDeps extends ServiceDeps {
  /** Where approval.requested and approval.answered are published (none: no events). */
  events?: Pick<EventBus, 'publish'>;
}

/** Who answers, and whose approvals they may see: by default the service's caller, as the owner. */
export interface AnswerOptions {
  /** Named in the audit record and as answeredBy (the API passes `owner` or `key:<id>`). */
  caller?: Caller;
  scope?: Scope;
}

// A tenant sees an approval when its vault is the vault of one of the tenant's sandboxes.
const TENANT_SEES = 'EXISTS (SELECT 1 FROM sandboxes s WHERE s.vault = approvals.vault AND s.tenant = ?)';

export class ApprovalService {
  private readonly store: CorralStore;
  private readonly caller: Caller;
  private readonly events: Pick<EventBus, 'publish'> | undefined;

  constructor({ store, caller, events }: ApprovalServiceDeps) {
    this.store = store;
    this.caller = caller;
    this.events = events;
  }

  /** Publishes an approval event, naming the sandbox of its vault (the live one first) and its tenant. */
  private publish(type: 'approval.requested' | 'approval.answered', a: Approval, reason: string): void {
    if (!this.events) return;
    const sb = this.sandboxOf(a.vault);
    this.events.publish(type, { sandbox: sb?.id ?? null, tenant: sb?.tenant ?? null, data: { approval: a.id, vault: a.vault, command: a.command, state: a.state, reason } });
  }

  /** The sandbox working on `vault`, a live one before a destroyed one, the newest first; undefined outside any sandbox. */
  sandboxOf(vault: string): { id: string; tenant: string | null } | undefined {
    return this.store.db.get<{ id: string; tenant: string | null }>("SELECT id, tenant FROM sandboxes WHERE vault = ? ORDER BY state = 'destroyed', rowid DESC LIMIT 1", vault);
  }

  create(vault: string, command: string, request: Record<string, unknown>, decision: Record<string, unknown> & { reason: string }, ttlMs = DEFAULT_APPROVAL_TTL_MS): Approval {
    const id = `apr_${randomBytes(8).toString('hex')}`;
    const now = this.store.now();
    const created = this.store.write(this.caller, vault, { op: 'approval.request', target: id, details: { command, decision } }, () => {
      this.store.db.run(
        'INSERT INTO approvals(id, vault, command, request, decision, reason, requester, state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        id, vault, command, JSON.stringify(request), JSON.stringify(decision), decision.reason, this.caller.actor, 'pending', now, now + ttlMs,
      );
      return this.get(id);
    });
    this.publish('approval.requested', created, created.reason);
    return created;
  }

  /** Pending approvals past their deadline become expired (audited) before anything reads them. */
  private expire(): void {
    const now = this.store.now();
    const stale = this.store.db.all<{ id: string; vault: string }>("SELECT id, vault FROM approvals WHERE state = 'pending' AND expires_at <= ?", now);
    for (const s of stale) {
      const expired = this.store.write(this.caller, s.vault, { op: 'approval.expire', target: s.id }, () => {
        return this.store.db.run("UPDATE approvals SET state = 'expired' WHERE id = ? AND state = 'pending'", s.id).changes > 0;
      });
      if (expired) this.publish('approval.answered', this.get(s.id), 'its deadline passed');
    }
  }

  /** Approvals, oldest first; a tenant's scope sees only those of its sandboxes' vaults. */
  list(filter: { state?: ApprovalState; vault?: string } = {}, scope: Scope = OWNER): Approval[] {
    this.expire();
    const rows = this.store.db.all<ApprovalRow>(
      `SELECT * FROM approvals WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR vault = ?2) AND (?3 IS NULL OR ${TENANT_SEES.replace('?', '?3')}) ORDER BY created_at, id`,
      filter.state ?? null, filter.vault ?? null, scope.tenant,
    );
    return rows.map(toApproval);
  }

  /** An approval by id; another tenant's answers APPROVAL_NOT_FOUND, like a missing one. */
  get(id: string, scope: Scope = OWNER): Approval {
    if (typeof id !== 'string' || !ID.test(id)) throw new CorralError('INVALID_ARGUMENT', `'${String(id).slice(0, 40)}' is not an approval id (apr_ and 16 hex digits): see corral approvals list`, { id: String(id).slice(0, 40) });
    const row =
      scope.tenant === null
        ? this.store.db.get<ApprovalRow>('SELECT * FROM approvals WHERE id = ?', id)
        : this.store.db.get<ApprovalRow>(`SELECT * FROM approvals WHERE id = ? AND ${TENANT_SEES}`, id, scope.tenant);
    if (!row) throw new CorralError('APPROVAL_NOT_FOUND', `no approval ${id}: see corral approvals list`, { id });
    return toApproval(row);
  }

  approve(id: string, reason = '', options: AnswerOptions = {}): Approval {
    return this.answer(id, 'approved', reason, options);
  }

  deny(id: string, reason = '', options: AnswerOptions = {}): Approval {
    return this.answer(id, 'denied', reason, options);
  }

  private answer(id: string, state: 'approved' | 'denied', reason: string, options: AnswerOptions): Approval {
    const caller = options.caller ?? this.caller;
    const scope = options.scope ?? OWNER;
    this.expire();
    const current = this.get(id, scope);
    // Locally the agent and the person may be the same user: the record says so, for whoever audits.
    const selfAnswered = current.requester === caller.actor;
    const answered = this.store.write(caller, current.vault, { op: state === 'approved' ? 'approval.approve' : 'approval.deny', target: id, details: { reason, command: current.command, requester: current.requester, selfAnswered } }, () => {
      const a = this.get(id);
      if (a.state !== 'pending') throw new CorralError('APPROVAL_NOT_PENDING', `approval ${id} is ${a.state}, not pending: nothing to answer`, { id, state: a.state });
      this.store.db.run('UPDATE approvals SET state = ?, answered_by = ?, answered_at = ?, answer_reason = ? WHERE id = ?', state, caller.actor, this.store.now(), reason, id);
      return this.get(id);
    });
    this.publish('approval.answered', answered, reason);
    return answered;
  }

  /** Marks an approved approval used (once): the exec it allowed is about to run. */
  consume(id: string): Approval {
    this.expire();
    const current = this.get(id);
    return this.store.write(this.caller, current.vault, { op: 'approval.use', target: id }, () => {
      const a = this.get(id);
      if (a.state === 'approved' && a.expiresAt <= this.store.now()) {
        // An approval is for now, not forever: an approved one unused by its deadline expires too.
        this.store.db.run("UPDATE approvals SET state = 'expired' WHERE id = ?", id);
        throw new CorralError('APPROVAL_NOT_PENDING', `approval ${id} expired before it was used: run the command again to ask anew`, { id, state: 'expired' });
      }
      if (a.state !== 'approved')
        throw new CorralError('APPROVAL_NOT_PENDING', a.state === 'pending' ? `approval ${id} is still pending: a person must approve it first (corral approvals approve ${id})` : `approval ${id} is ${a.state}: it cannot run a command`, { id, state: a.state });
      this.store.db.run("UPDATE approvals SET state = 'used' WHERE id = ?", id);
      return this.get(id);
    });
  }

  /** Polls until the approval is answered or expires, or `deadlineMs` passes; returns its state then. */
  async waitFor(id: string, deadlineMs: number, signal?: AbortSignal): Promise<Approval> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      this.expire();
      const a = this.get(id);
      if (a.state !== 'pending' || Date.now() >= end || signal?.aborted) return a;
      await sleep(Math.min(200, Math.max(1, end - Date.now())));
    }
  }
}
