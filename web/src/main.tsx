// The dashboard: a hash router over five pages, a key prompt when the daemon asks for one, and a
// header with the pending approvals count. Every action is an ordinary API call.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { connect, forgetKey, isUnauthenticated, saveKey, takeKey, type Api } from './client.ts';
import { SandboxesPage } from './pages/sandboxes.tsx';
import { SandboxPage } from './pages/sandbox.tsx';
import { TimelinePage } from './pages/timeline.tsx';
import { ApprovalsPage } from './pages/approvals.tsx';
import { AuditPage } from './pages/audit.tsx';
import './style.css';

function useRoute(): string[] {
  const parse = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function KeyPrompt({ onKey, failed }: { onKey: (k: string) => void; failed: boolean }) {
  const [value, setValue] = useState('');
  return (
    <form class="card login" onSubmit={(e) => { e.preventDefault(); if (value.trim()) onKey(value.trim()); }}>
      <h2>Connect to Corral</h2>
      <p>This daemon asks for an API key. Run <code>corral dashboard</code> on the machine for a link that signs you in, or paste a key (<code>corral keys create</code>).</p>
      {failed && <p class="error">That key was refused.</p>}
      <input type="password" name="key" placeholder="crl_…" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} autoFocus />
      <button type="submit">Connect</button>
    </form>
  );
}

function App() {
  const [key, setKey] = useState<string | null>(() => takeKey());
  const [api, setApi] = useState<Api>(() => connect(key));
  const [auth, setAuth] = useState<'checking' | 'ok' | 'needed' | 'refused'>('checking');
  const [pending, setPending] = useState(0);
  const route = useRoute();

  useEffect(() => {
    let live = true;
    api.corral.sandboxes.list().then(
      () => live && setAuth('ok'),
      (e) => live && setAuth(isUnauthenticated(e) ? (key ? 'refused' : 'needed') : 'ok'),
    );
    return () => { live = false; };
  }, [api]);

  // The approvals badge: counted now and again on every approval event.
  useEffect(() => {
    if (auth !== 'ok') return;
    const count = () => api.corral.approvals.list({ state: 'pending' }).then((a) => setPending(a.length), () => undefined);
    void count();
    const stream = api.corral.events({ types: ['approval.requested', 'approval.answered'] });
    (async () => { for await (const _ of stream) void count(); })().catch(() => undefined);
    return () => void stream.close();
  }, [api, auth]);

  const useKey = (k: string) => { saveKey(k); setKey(k); setAuth('checking'); setApi(connect(k)); };
  if (auth === 'needed' || auth === 'refused') return <main><KeyPrompt onKey={useKey} failed={auth === 'refused'} /></main>;
  if (auth === 'checking') return <main><p class="muted">Connecting…</p></main>;

  const [page, id, sub] = route;
  let body;
  if (page === 'sandboxes' && id && sub === 'timeline') body = <TimelinePage api={api} id={id} />;
  else if (page === 'sandboxes' && id) body = <SandboxPage api={api} id={id} />;
  else if (page === 'approvals') body = <ApprovalsPage api={api} />;
  else if (page === 'audit') body = <AuditPage api={api} />;
  else body = <SandboxesPage api={api} />;
  const tab = (href: string, label: string, active: boolean, extra?: preact.ComponentChildren) => <a href={href} class={active ? 'active' : ''}>{label}{extra}</a>;
  return (
    <>
      <header>
        <span class="brand">Corral</span>
        <nav>
          {tab('#/', 'Sandboxes', !page || page === 'sandboxes')}
          {tab('#/approvals', 'Approvals', page === 'approvals', pending > 0 ? <span class="badge" data-testid="pending-count">{pending}</span> : null)}
          {tab('#/audit', 'Audit log', page === 'audit')}
        </nav>
        {key && <button class="link" onClick={() => { forgetKey(); location.hash = '#/'; location.reload(); }}>Sign out</button>}
      </header>
      <main>{body}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
