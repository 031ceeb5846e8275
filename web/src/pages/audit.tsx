// The audit log with filters (operation, sandbox, since, limit) and the hash chain's verification.
import { useEffect, useState } from 'preact/hooks';
import type { AuditList, AuditRecordWire, AuditVerificationWire } from '../../../src/protocol/api-schemas.ts';
import { errorText, type Api } from '../client.ts';

export function AuditPage({ api }: { api: Api }) {
  const [filters, setFilters] = useState({ op: '', sandbox: '', since: '', limit: '200' });
  const [records, setRecords] = useState<AuditRecordWire[] | null>(null);
  const [verify, setVerify] = useState<AuditVerificationWire | null>(null);
  const [error, setError] = useState('');
  const load = (f = filters) => {
    setError('');
    api.get<AuditList>('/v1/audit', { op: f.op, sandbox: f.sandbox, since: f.since ? new Date(f.since).toISOString() : undefined, limit: f.limit }).then((r) => setRecords([...r.records].reverse()), (e) => setError(errorText(e)));
  };
  const check = () => api.get<AuditVerificationWire>('/v1/audit/verify').then(setVerify, (e) => setError(errorText(e)));
  useEffect(() => { load(); void check(); }, [api]);
  const field = (name: keyof typeof filters, placeholder: string, type = 'text') => (
    <input name={name} type={type} placeholder={placeholder} value={filters[name]} onInput={(e) => setFilters({ ...filters, [name]: (e.target as HTMLInputElement).value })} />
  );
  return (
    <section>
      <div class="row">
        <h1>Audit log</h1>
        <span class="grow" />
        {verify && (verify.ok ? <span class="ok" data-testid="audit-verify">✔ chain verified: {verify.records} records</span> : <span class="error" data-testid="audit-verify">✘ chain broken: {verify.problems.length} problem{verify.problems.length === 1 ? '' : 's'}</span>)}
        <button class="secondary" onClick={() => void check()}>Verify again</button>
      </div>
      {verify && !verify.ok && <ul class="error">{verify.problems.slice(0, 20).map((p) => <li key={p.seq}>{p.message}</li>)}</ul>}
      <form class="row filters" onSubmit={(e) => { e.preventDefault(); load(); }}>
        {field('op', 'operation (exec, approval.deny…)')}
        {field('sandbox', 'sandbox (sbx_… or name)')}
        {field('since', 'since', 'datetime-local')}
        {field('limit', 'limit', 'number')}
        <button type="submit">Filter</button>
      </form>
      {error && <p class="error">{error}</p>}
      {!records ? <p class="muted">Loading…</p> : records.length === 0 ? <p class="muted">No records match.</p> : (
        <table data-testid="audit"><thead><tr><th>#</th><th>Time</th><th>Actor</th><th>Operation</th><th>Vault</th><th>Target</th><th>Result</th></tr></thead><tbody>
          {records.map((r) => (
            <tr key={r.seq} title={JSON.stringify(r.details)}>
              <td>{r.seq}</td><td class="small">{r.at.replace('T', ' ').slice(0, 19)}</td><td>{r.actor}</td><td><code>{r.op}</code></td><td>{r.vault ?? ''}</td><td class="target"><code>{(r.target ?? '').slice(0, 120)}</code></td>
              <td class={r.result === 'ok' ? '' : 'error'}>{r.result}</td>
            </tr>
          ))}
        </tbody></table>
      )}
    </section>
  );
}
