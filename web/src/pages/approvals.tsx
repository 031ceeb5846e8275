// Approvals: the queue of commands the policy sent to a person, with the policy's classification and
// reason; approve or deny with a reason. Live: a new request shows at once, an answer reaches the
// waiting agent through the daemon as soon as it is given.
import { useEffect, useState } from 'preact/hooks';
import type { Approval } from '../../../src/sdk/index.ts';
import { age, errorText, type Api } from '../client.ts';

function Pending({ api, a, onDone }: { api: Api; a: Approval; onDone: (msg: string) => void }) {
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const categories = Array.isArray(a.decision.categories) ? (a.decision.categories as string[]) : [];
  const act = async (kind: 'approve' | 'deny') => {
    if (kind === 'deny' && !reason.trim()) return setError('Give a reason: the agent sees it.');
    setBusy(true);
    try {
      if (kind === 'approve') await api.corral.approvals.approve(a.id, reason.trim() ? { reason: reason.trim() } : {});
      else await api.corral.approvals.deny(a.id, reason.trim());
      onDone(`${kind === 'approve' ? 'Approved' : 'Denied'} ${a.id}.`);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  return (
    <div class="card approval" data-approval={a.id}>
      <div class="row">
        <code class="command">{a.command}</code>
        <span class="grow" />
        <span class="muted small">{age(a.createdAt)} ago · expires {new Date(a.expiresAt).toLocaleTimeString()}</span>
      </div>
      <p>{categories.map((c) => <span class="tag" key={c}>{c}</span>)} {a.reason}</p>
      <p class="muted small">{a.sandbox ? <a href={`#/sandboxes/${a.sandbox}`}>{a.sandbox}</a> : 'no sandbox'} · vault {a.vault} · asked by {a.requester} · rule {String(a.decision.rule ?? '')}</p>
      {error && <p class="error">{error}</p>}
      <div class="row">
        <input class="grow" placeholder="Reason (required to deny; shown to the agent)" value={reason} maxLength={2000} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
        <button disabled={busy} data-testid="approve" onClick={() => void act('approve')}>Approve</button>
        <button disabled={busy} class="danger" data-testid="deny" onClick={() => void act('deny')}>Deny</button>
      </div>
    </div>
  );
}

export function ApprovalsPage({ api }: { api: Api }) {
  const [list, setList] = useState<Approval[] | null>(null);
  const [message, setMessage] = useState('');
  const [error, setError] = useState('');
  useEffect(() => {
    const load = () => api.corral.approvals.list().then((l) => { setList(l); setError(''); }, (e) => setError(errorText(e)));
    void load();
    const stream = api.corral.events({ types: ['approval.requested', 'approval.answered'] });
    (async () => { for await (const _ of stream) void load(); })().catch((e) => setError(errorText(e)));
    return () => void stream.close();
  }, [api]);
  const pending = list?.filter((a) => a.state === 'pending') ?? [];
  const answered = (list?.filter((a) => a.state !== 'pending') ?? []).reverse().slice(0, 50);
  return (
    <section>
      <div class="row"><h1>Approvals</h1><span class="live">● live</span></div>
      {message && <p class="ok">{message}</p>}
      {error && <p class="error">{error}</p>}
      {list === null ? <p class="muted">Loading…</p> : pending.length === 0 ? <p class="muted" data-testid="no-pending">Nothing waits for an answer.</p> : pending.map((a) => <Pending key={a.id} api={api} a={a} onDone={(m) => { setMessage(m); setList((l) => l?.map((x) => (x.id === a.id ? { ...x, state: 'used' } : x)) ?? null); }} />)}
      {answered.length > 0 && (
        <div class="card">
          <h3>Answered</h3>
          <table><thead><tr><th>Command</th><th>State</th><th>By</th><th>Reason</th><th>When</th></tr></thead><tbody>
            {answered.map((a) => <tr key={a.id}><td><code>{a.command.slice(0, 100)}</code></td><td><span class={`state state-${a.state}`}>{a.state}</span></td><td>{a.answeredBy ?? ''}</td><td>{a.answerReason ?? ''}</td><td>{age(a.answeredAt ?? a.createdAt)} ago</td></tr>)}
          </tbody></table>
        </div>
      )}
    </section>
  );
}
