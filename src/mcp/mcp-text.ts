// What the MCP tools say to a model in text: an exec's result (status, exit, output, changes,
// and for a denial or an approval what to do next), numbered lines of a file, and the commit a
// sandbox started from (the default base of `diff`).
import type { ExecResult, PathChange } from '../protocol/exec-result.ts';
import type { Corral } from '../services/corral.ts';
import type { ExecInfo } from '../services/exec-sessions.ts';

function clip(text: string, limit: number): string {
  if (text.length <= limit) return text;
  return `${text.slice(0, limit)}\n… (${text.length - limit} more characters: read them with exec_output, or the structured result)`;
}

function paths(list: PathChange[], max = 20): string {
  const shown = list.slice(0, max).map((p) => p.path).join(', ');
  return list.length > max ? `${shown}, … (${list.length - max} more)` : shown;
}

/** A running exec, in one line. */
export function describeExecInfo(info: ExecInfo): string {
  return `running: ${info.id} (${info.stdoutBytes} bytes of stdout, ${info.stderrBytes} of stderr so far). Use exec_output to read its output, exec_wait to wait for its end, exec_kill to stop it.`;
}

/** An exec's result envelope for a model: what happened, its output, what changed, what to do next. */
export function describeExec(r: ExecResult | null, limit: number, info?: ExecInfo): string {
  if (r === null) {
    if (info?.error) return `failed: ${info.error.code}: ${info.error.message}`;
    return `${info?.state ?? 'failed'}: ${info?.id ?? 'the exec'} has no result (its daemon stopped while it ran).`;
  }
  const lines: string[] = [];
  const d = r.decision;
  switch (r.status) {
    case 'denied':
      lines.push(`denied: the policy does not allow this command${d ? ` (rule ${d.rule}${d.categories.length ? `; ${d.categories.join(', ')}` : ''})` : ''}.`);
      if (d) lines.push(`why: ${d.reason}`);
      lines.push('Do not retry it as it is. Change the approach (the reason says what is allowed), split it into simpler commands, or ask the user to run it or to approve it under another policy.');
      return lines.join('\n');
    case 'pending':
      lines.push(`pending: this command needs a person's approval${d ? ` (${d.reason})` : ''}.`);
      if (r.approval) {
        lines.push(`approval: ${r.approval.id} (expires ${r.approval.expiresAt})`);
        lines.push(`Tell the user: they approve it with 'corral approvals approve ${r.approval.id}' (or deny it). Once approved, call exec with {"approval": "${r.approval.id}"} to run it. Do not send the same command again: it would ask anew.`);
      }
      return lines.join('\n');
    case 'failed':
      lines.push(`failed: the command did not run${r.error ? `: ${r.error.code}: ${r.error.message}` : ''}`);
      break;
    case 'completed': {
      const how = r.timedOut ? `timed out after ${r.limits?.timeoutMs ?? '?'} ms` : r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
      lines.push(`completed: ${how} in ${Math.round(r.durationMs)} ms (${r.id})${r.oomKilled ? ', out of memory' : ''}`);
      break;
    }
  }
  if (r.checkpoint) lines.push(`checkpoint ${r.checkpoint} was taken before it ran (checkpoint_restore undoes it)`);
  const c = r.changes;
  if (c) {
    if (c.commit) {
      const parts = [c.added.length ? `added ${paths(c.added)}` : '', c.modified.length ? `modified ${paths(c.modified)}` : '', c.deleted.length ? `deleted ${paths(c.deleted)}` : ''].filter(Boolean);
      lines.push(`changes (commit ${c.commit.slice(0, 12)}): ${parts.join('; ')}`);
    } else if (c.discarded) lines.push(`changes discarded: ${c.discarded}${c.conflicts?.length ? ` (${c.conflicts.join(', ')})` : ''}`);
    else lines.push('no files changed');
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  if (r.encoding === 'base64') lines.push(`output is binary (base64 in the structured result): ${r.stdout.length} + ${r.stderr.length} characters`);
  else {
    if (r.stdout) lines.push(`--- stdout${r.truncated ? ' (truncated)' : ''} ---\n${clip(r.stdout, limit)}`);
    if (r.stderr) lines.push(`--- stderr ---\n${clip(r.stderr, limit)}`);
  }
  return lines.join('\n');
}

/** Lines `start`..`end` (1-based) of `text`, each as cat -n shows it. */
export function numberLines(text: string, start: number, end: number): { content: string; endLine: number; totalLines: number } {
  const all = text.split('\n');
  // A final newline ends the last line; it does not start another.
  if (all.length > 1 && all[all.length - 1] === '') all.pop();
  const totalLines = text.length === 0 ? 0 : all.length;
  const last = Math.min(end, totalLines);
  const out: string[] = [];
  for (let n = start; n <= last; n++) out.push(`${String(n).padStart(6)}\t${all[n - 1]}`);
  return { content: out.length ? out.join('\n') + '\n' : '', endLine: Math.max(last, start - 1), totalLines };
}

/** The commit a sandbox's vault was at when the sandbox was made: the newest one not after its creation. */
export function sandboxStart(corral: Pick<Corral, 'store'>, vault: string, createdAt: string): string {
  const since = Date.parse(createdAt);
  const v = corral.store.getVault(vault);
  let c = corral.store.getCommit(v.head);
  while (c.createdAt > since && c.parent) c = corral.store.getCommit(c.parent);
  return c.id;
}
