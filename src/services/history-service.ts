// History: log, show, diff between any two versions, revert a path.
import { structuredPatch } from 'diff';
import { CorralError } from '../protocol/errors.ts';
import { isWithin, normalizePath, parentOf } from '../protocol/paths.ts';
import { EMPTY_TREE } from '../store/object-store.ts';
import type { Caller, Commit, CorralStore, Vault } from '../store/corral-store.ts';
import { diffTrees, lookup, summarize, type Change, type ChangeSummary } from '../store/tree-diff.ts';
import type { ServiceDeps } from './corral.ts';

export interface DiffResult {
  from: string;
  to: string;
  changes: (Change & { patch?: string; binary?: boolean })[];
  summary: ChangeSummary;
}

/** Bytes beyond which a file gets no text diff. */
const PATCH_LIMIT = 1 << 20;

export function isBinary(data: Uint8Array): boolean {
  const n = Math.min(data.length, 8000);
  for (let i = 0; i < n; i++) if (data[i] === 0) return true;
  return false;
}

export class HistoryService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  /** Commits from the head backwards; with `path`, only those that changed it. */
  log(vault: string, options: { path?: string; limit?: number; ref?: string } = {}): Commit[] {
    const v = this.store.getVault(vault);
    const limit = options.limit ?? 100;
    const path = options.path === undefined ? undefined : normalizePath(options.path);
    const out: Commit[] = [];
    let c: Commit | undefined = options.ref ? this.store.resolveRef(v, options.ref) : this.store.getCommit(v.head);
    while (c && out.length < limit) {
      const parent: Commit | undefined = c.parent ? this.store.getCommit(c.parent) : undefined;
      if (path === undefined || this.changedAt(c, parent, path)) out.push(c);
      c = parent;
    }
    return out;
  }

  private changedAt(c: Commit, parent: Commit | undefined, path: string): boolean {
    const now = lookup(this.store.objects, c.tree, path);
    const before = parent ? lookup(this.store.objects, parent.tree, path) : undefined;
    if (!now || !before) return now !== before;
    return now.hash !== before.hash || now.mode !== before.mode || now.kind !== before.kind;
  }

  show(vault: string, ref: string, options: { patch?: boolean } = {}): { commit: Commit; diff: DiffResult } {
    const v = this.store.getVault(vault);
    const commit = this.store.resolveRef(v, ref);
    const parentTree = commit.parent ? this.store.getCommit(commit.parent).tree : undefined;
    return { commit, diff: this.diffCommits(parentTree, commit.tree, commit.parent ?? '(none)', commit.id, options.patch ?? false) };
  }

  /** Changes from `a` to `b` (checkpoint names, commit ids, HEAD, HEAD~N). */
  diff(vault: string, a: string, b: string, options: { patch?: boolean; path?: string } = {}): DiffResult {
    const v = this.store.getVault(vault);
    const from = this.store.resolveRef(v, a);
    const to = this.store.resolveRef(v, b);
    let changes = diffTrees(this.store.objects, from.tree, to.tree);
    if (options.path !== undefined) {
      const p = normalizePath(options.path);
      // Filtered before any patch is made, so --path keeps -p cheap.
      changes = changes.filter((c) => isWithin(c.path, p));
    }
    return this.result(from.id, to.id, changes, options.patch ?? false);
  }

  diffCommits(fromTree: string | undefined, toTree: string, fromId: string, toId: string, patch: boolean): DiffResult {
    const changes: DiffResult['changes'] = diffTrees(this.store.objects, fromTree ?? EMPTY_TREE, toTree);
    return this.result(fromId, toId, changes, patch);
  }

  private result(fromId: string, toId: string, changes: DiffResult['changes'], patch: boolean): DiffResult {
    if (patch) for (const c of changes) Object.assign(c, this.patchFor(c));
    return { from: fromId, to: toId, changes, summary: summarize(changes) };
  }

  private patchFor(c: Change): { patch?: string; binary?: boolean } {
    if ((c.kind !== 'file' && c.oldKind === undefined) || (c.oldSize ?? 0) > PATCH_LIMIT || (c.newSize ?? 0) > PATCH_LIMIT) return {};
    const oldData = c.oldHash ? this.store.objects.getBlob(c.oldHash) : new Uint8Array(0);
    const newData = c.newHash ? this.store.objects.getBlob(c.newHash) : new Uint8Array(0);
    if (isBinary(oldData) || isBinary(newData)) return { binary: true };
    const dec = new TextDecoder();
    const p = structuredPatch(c.change === 'added' ? '/dev/null' : 'a' + c.path, c.change === 'deleted' ? '/dev/null' : 'b' + c.path, dec.decode(oldData), dec.decode(newData), '', '', { context: 3 });
    const lines = [`--- ${p.oldFileName}`, `+++ ${p.newFileName}`];
    // GNU diff numbers an empty side from the line before it: `-0,0` for a new file.
    const range = (start: number, count: number): string => (count === 0 ? `${start - 1},0` : `${start},${count}`);
    for (const h of p.hunks) lines.push(`@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@`, ...h.lines);
    return { patch: lines.join('\n') + '\n' };
  }

  /**
   * Puts `path` back as it was at `ref`, or, without one, as it was before its last change.
   * A path that did not exist then is removed.
   */
  revert(vault: string, path: string, ref?: string): { path: string; to: string; commit: Commit | null } {
    const p = normalizePath(path);
    if (p === '/') throw new CorralError('INVALID_PATH', "revert takes a path inside the vault; to bring back a whole version use 'corral checkpoint restore REF'", { path: p });
    const v = this.store.getVault(vault);
    const source = ref !== undefined ? this.store.resolveRef(v, ref) : this.beforeLastChange(v, p);
    const old = lookup(this.store.objects, source.tree, p);
    const { commit } = this.store.mutate(this.caller, vault, { op: 'file.revert', target: p, message: `revert ${p} to ${source.id.slice(0, 12)}`, details: { to: source.id } }, (editor) => {
      if (old) {
        editor.mkdirs(parentOf(p));
        editor.set(p, { ...old, mtime: editor.mtime });
      } else if (editor.lstat(p)) {
        editor.remove(p);
      }
    });
    return { path: p, to: source.id, commit };
  }

  private beforeLastChange(v: Vault, path: string): Commit {
    const [last] = this.log(v.name, { path, limit: 1 });
    if (!last || !last.parent) throw new CorralError('REF_NOT_FOUND', `${path} has no earlier version to revert to`, { path });
    return this.store.getCommit(last.parent);
  }
}
