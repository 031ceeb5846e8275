// A workspace's timeline: commits and checkpoints, newest first, each with its origin and change
// summary; a click shows the diff side by side (syntax highlighted); a checkpoint can be restored.
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { Sandbox } from '../../../src/sdk/index.ts';
import type { DiffWire, HistoryEntry, HistoryWire } from '../../../src/protocol/api-schemas.ts';
import { age, bytes, errorText, type Api } from '../client.ts';

type Highlighter = typeof import('../highlight.ts');
type Cell = { n: number; text: string; kind: 'ctx' | 'del' | 'add' } | null;
type Row = { left: Cell; right: Cell } | { hunk: string };

/** Side-by-side rows of a unified patch: deletions paired with the additions that follow them. */
export function sideBySide(patch: string): Row[] {
  const rows: Row[] = [];
  let l = 0;
  let r = 0;
  let dels: Cell[] = [];
  let adds: Cell[] = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) rows.push({ left: dels[i] ?? null, right: adds[i] ?? null });
    dels = [];
    adds = [];
  };
  for (const line of patch.split('\n')) {
    if (line.startsWith('--- ') || line.startsWith('+++ ')) continue;
    const h = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (h) { flush(); l = Number(h[1]); r = Number(h[2]); rows.push({ hunk: line }); continue; }
    if (line.startsWith('-')) dels.push({ n: l++, text: line.slice(1), kind: 'del' });
    else if (line.startsWith('+')) adds.push({ n: r++, text: line.slice(1), kind: 'add' });
    else if (line.startsWith(' ')) { flush(); rows.push({ left: { n: l++, text: line.slice(1), kind: 'ctx' }, right: { n: r++, text: line.slice(1), kind: 'ctx' } }); }
  }
  flush();
  return rows;
}

function Code({ cell, lang, hl }: { cell: Cell; lang: string | undefined; hl: Highlighter | null }) {
  if (!cell) return <><td class="ln" /><td class="code empty" /></>;
  const html = hl && lang ? hl.highlightLine(cell.text, lang) : null;
  return <><td class="ln">{cell.n}</td>{html !== null ? <td class={`code ${cell.kind}`} dangerouslySetInnerHTML={{ __html: html }} /> : <td class={`code ${cell.kind}`}>{cell.text}</td>}</>;
}

function FileDiff({ change, hl }: { change: DiffWire['changes'][number]; hl: Highlighter | null }) {
  const rows = useMemo(() => (change.patch ? sideBySide(change.patch) : []), [change.patch]);
  const lang = hl?.languageOf(change.path);
  return (
    <div class="filediff" data-testid="file-diff">
      <div class="filehead"><span class={`chg chg-${change.change}`}>{change.change}</span> <code>{change.path}</code>{change.kind === 'symlink' && ' (link)'}</div>
      {change.binary ? <p class="muted">Binary file ({bytes(change.oldSize ?? 0)} → {bytes(change.newSize ?? 0)}).</p> : !change.patch ? <p class="muted">No text diff (a link, a large file, or past the patch budget).</p> : (
        <table class="diff"><colgroup><col class="lncol" /><col /><col class="lncol" /><col /></colgroup><tbody>
          {rows.map((row, i) => ('hunk' in row ? <tr key={i} class="hunk"><td colSpan={4}>{row.hunk}</td></tr> : <tr key={i}><Code cell={row.left} lang={lang} hl={hl} /><Code cell={row.right} lang={lang} hl={hl} /></tr>))}
        </tbody></table>
      )}
    </div>
  );
}

function Summary({ s }: { s: HistoryEntry['summary'] }) {
  return <span class="summary">{s.added > 0 && <span class="add">+{s.added}</span>} {s.modified > 0 && <span class="mod">~{s.modified}</span>} {s.deleted > 0 && <span class="del">−{s.deleted}</span>} {s.added + s.modified + s.deleted === 0 && <span class="muted">no changes</span>}</span>;
}

export function TimelinePage({ api, id }: { api: Api; id: string }) {
  const [sb, setSb] = useState<Sandbox | null>(null);
  const [hist, setHist] = useState<HistoryWire | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [diff, setDiff] = useState<DiffWire | null>(null);
  const [hl, setHl] = useState<Highlighter | null>(null);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [message, setMessage] = useState('');
  const [error, setError] = useState('');

  const load = () => api.get<HistoryWire>(`/v1/sandboxes/${encodeURIComponent(id)}/history`, { limit: 200 }).then(setHist, (e) => setError(errorText(e)));
  useEffect(() => {
    api.corral.sandboxes.get(id).then(setSb, (e) => setError(errorText(e)));
    void load();
    const stream = api.corral.events({ sandbox: id, types: ['exec.exited', 'checkpointed', 'restored'] });
    (async () => { for await (const _ of stream) void load(); })().catch(() => undefined);
    return () => void stream.close();
  }, [api, id]);

  useEffect(() => {
    if (!selected) return;
    setDiff(null);
    import('../highlight.ts').then(setHl, () => undefined);
    api.get<DiffWire>(`/v1/sandboxes/${encodeURIComponent(id)}/diff`, { to: selected }).then(setDiff, (e) => setError(errorText(e)));
  }, [api, id, selected]);

  const restore = async (name: string) => {
    setConfirm(null);
    try {
      const r = await sb!.checkpoints.restore(name);
      setMessage(`Restored ${r.checkpoint}: the head is now ${r.commit.slice(0, 12)}.`);
      setSelected(null);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const save = async () => {
    try {
      const cp = await sb!.checkpoints.save();
      setMessage(`Saved checkpoint ${cp.name}.`);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section>
      <div class="row">
        <h1>Timeline</h1>
        <a href={`#/sandboxes/${id}`}>{sb?.name ?? id}</a>
        <span class="grow" />
        <button onClick={save} disabled={!sb || sb.state === 'destroyed'}>Save checkpoint</button>
      </div>
      {message && <p class="ok" data-testid="timeline-message">{message}</p>}
      {error && <p class="error">{error}</p>}
      {!hist ? <p class="muted">Loading…</p> : (
        <div class="cols timeline">
          <ol class="commits card" data-testid="timeline">
            {hist.commits.map((c) => (
              <li key={c.id} data-commit={c.id} class={selected === c.id ? 'selected clickable' : 'clickable'} onClick={() => setSelected(c.id)}>
                <div class="row">
                  <code class="small">{c.id.slice(0, 10)}</code>
                  <span class={`tag origin-${c.origin}`}>{c.origin}</span>
                  {c.head && <span class="tag head">HEAD</span>}
                  {c.checkpoints.map((n) => <span class="tag checkpoint" key={n}>⚑ {n}</span>)}
                  <span class="grow" />
                  <span class="muted small" title={c.createdAt}>{age(c.createdAt)} ago</span>
                </div>
                <div class="msg">{c.message}</div>
                <div class="muted small"><Summary s={c.summary} /> · {c.files} files · {bytes(c.size)} · {c.actor}</div>
              </li>
            ))}
            {hist.truncated && <li class="muted">Older commits not shown.</li>}
          </ol>
          <div>
            <div class="card">
              <h3>Checkpoints</h3>
              {hist.checkpoints.length === 0 ? <p class="muted">None yet.</p> : (
                <table data-testid="checkpoints"><tbody>
                  {[...hist.checkpoints].reverse().map((cp) => (
                    <tr key={cp.name}>
                      <td>⚑ {cp.name}</td><td class="muted small">{cp.message}</td><td class="muted small">{age(cp.createdAt)} ago</td>
                      <td><button class="small" data-restore={cp.name} onClick={() => setConfirm(cp.name)}>Restore</button></td>
                    </tr>
                  ))}
                </tbody></table>
              )}
            </div>
            {selected && (
              <div class="card">
                <h3>Changes in {selected.slice(0, 10)}</h3>
                {!diff ? <p class="muted">Loading…</p> : diff.changes.length === 0 ? <p class="muted">No file changes.</p> : diff.changes.map((ch) => <FileDiff key={ch.path + ch.change} change={ch} hl={hl} />)}
                {diff?.truncated && <p class="muted">Some files have no patch here (too many or too large).</p>}
              </div>
            )}
          </div>
        </div>
      )}
      {confirm && (
        <div class="modal" role="dialog" aria-modal="true">
          <div class="card">
            <h3>Restore checkpoint {confirm}?</h3>
            <p>The workspace's files become those of {confirm}. This is a new commit: the current state stays in the timeline and can be restored.</p>
            <div class="row"><span class="grow" /><button class="secondary" onClick={() => setConfirm(null)}>Cancel</button><button class="danger" data-testid="confirm-restore" onClick={() => void restore(confirm)}>Restore</button></div>
          </div>
        </div>
      )}
    </section>
  );
}
