// Approvals over the API: the commands the policy sent to a person, to list, read, approve or deny.
import type { ApprovalList, ApprovalWire } from '../protocol/api-schemas.ts';
import type { ApiClient, CallOptions } from './api-client.ts';

export type Approval = ApprovalWire;
export type ApprovalState = ApprovalWire['state'];

export class Approvals {
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  /** Approvals, oldest first: all, or those in one state (an API key sees its tenant's only). */
  async list(options: CallOptions & { /** Only approvals in this state (default: all). */ state?: ApprovalState } = {}): Promise<Approval[]> {
    const { state, ...call } = options;
    return (await this.client.json<ApprovalList>({ method: 'GET', path: '/v1/approvals', query: { state } }, call)).approvals;
  }

  /** One approval by id (apr_…). */
  get(id: string, options: CallOptions = {}): Promise<Approval> {
    return this.client.json<Approval>({ method: 'GET', path: `/v1/approvals/${encodeURIComponent(id)}` }, options);
  }

  /** Approves a pending approval; its exec runs when resumed (or at once when it waits for the answer). */
  approve(id: string, options: CallOptions & { /** Why (default: none); kept in the audit log. */ reason?: string } = {}): Promise<Approval> {
    const { reason, ...call } = options;
    return this.client.json<Approval>({ method: 'POST', path: `/v1/approvals/${encodeURIComponent(id)}/approve`, json: reason === undefined ? {} : { reason } }, call);
  }

  /** Denies a pending approval; the reason (required) is what the agent sees in the exec's result. */
  deny(id: string, reason: string, options: CallOptions = {}): Promise<Approval> {
    return this.client.json<Approval>({ method: 'POST', path: `/v1/approvals/${encodeURIComponent(id)}/deny`, json: { reason } }, options);
  }
}
