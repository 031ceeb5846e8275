// Checkouts: a vault's files in a real directory that ordinary tools use, and changes made there
// committed back with an exact summary. Users make checkouts with `corral checkout`; each vault
// also keeps one warm checkout under $CORRAL_HOME/checkouts/ for execs (the overlay lower layer,
// or the directory an in-place exec writes into). Change detection is stat-index.ts (this file's
// scans) or overlay-changes.ts (the exec pipeline's); both give an FsChangeSet, committed here.
// Nothing is written or read through a symlink found on the host.
import { closeSync, constants as fsc, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, renameSync, rmSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve as resolveHost, sep } from 'node:path';
import { CorralError } from '../protocol/errors.ts';
import { joinPath, parentOf, splitPath } from '../protocol/paths.ts';
import type { Caller, Commit, CorralStore, Origin } from '../store/corral-store.ts';
import { EMPTY_TREE, type Entry, type EntryKind, type ObjectStore } from '../store/object-store.ts';
import { diffTrees, lookup, type Change } from '../store/tree-diff.ts';
import { TreeEditor } from '../store/tree-editor.ts';
import { applyFsChanges, type FsChangeSet } from '../runtime/fs-changes.ts';
import { buildIndex, indexFile, loadIndex, saveIndex, scanDir, type IndexEntry, type StatIndex } from '../runtime/stat-index.ts';
import type { ServiceDeps } from './corral.ts';
import { HistoryService } from './history-service.ts';
import { checkEntryName, ensureHostDir, errnoCode, finishHostDir, hostError, unsafeHostPath, writeHostFile, writeHostLink, type HostDir } from '../runtime/host-files.ts';
import { TransferService } from './transfer-service.ts';
import { pidAlive } from '../runtime/cgroups.ts';

/** One path a commit (or a pending commit) changes. Directories appear only when empty or when their mode changed. */
export interface FileChange {
  path: string;
  change: 'added' | 'modified' | 'deleted';
  kind: EntryKind;
  /** The kind before, when a modification changed it (a file replaced by a symlink). */
  oldKind?: EntryKind;
  /** The new size, or the old size when deleted. */
  size: number;
  oldSize?: number;
  /** The new mode, or the old one when deleted. */
  mode?: number;
  /** The mode before, when a modification changed it. */
  oldMode?: number;
  /** Symlinks: the target (the old one when deleted). */
  target?: string;
  /** Symlinks: the target before, when a modification changed it. */
  oldTarget?: string;
}

export interface CheckoutInfo {
  id: number;
  vault: string;
  dir: string;
  kind: 'user' | 'warm';
  /** The commit the directory matched when it was last checked out, committed or synced. */
  base: string;
  createdAt: number;
  updatedAt: number;
}

export interface CheckoutResult {
  vault: string;
  dir: string;
  commit: string;
  files: number;
  symlinks: number;
  dirs: number;
  bytes: number;
}

export interface StatusResult {
  vault: string;
  dir: string;
  base: string;
  head: string;
  summary: FileChange[];
  skipped: { path: string; reason: string }[];
  /** Paths changed here and also in the vault since `base`: commit would refuse them. */
  conflicts: string[];
}

export interface CommitResult {
  commit: Commit | null;
  changes: FileChange[];
  patch?: string;
  skipped: { path: string; reason: string }[];
}

export interface WarmCheckout {
  id: number;
  dir: string;
  base: string;
  tree: string;
}

interface CheckoutRow {
  id: number;
  vault_id: number;
  vault: string;
  dir: string;
  kind: 'user' | 'warm';
  base: string;
  created_at: number;
  updated_at: number;
}

/** A structural change between two trees: a path replaced or removed as a whole, or a directory's mode. */
type Delta = { path: string; op: 'replace'; entry: Entry | undefined } | { path: string; op: 'mode'; mode: number };

const ROW_SQL = 'SELECT c.*, v.name AS vault FROM checkouts c JOIN vaults v ON v.id = c.vault_id';
const decoder = new TextDecoder();

export class CheckoutService {
  private readonly store: CorralStore;
  private readonly caller: Caller;
  private readonly transfer: TransferService;
  private readonly history: HistoryService;

  constructor(deps: ServiceDeps) {
    this.store = deps.store;
    this.caller = deps.caller;
    this.transfer = new TransferService(deps);
    this.history = new HistoryService(deps);
  }

  private get objects(): ObjectStore {
    return this.store.objects;
  }

  // ---- registry -----------------------------------------------------------------------------

  list(vault?: string): CheckoutInfo[] {
    const rows = vault === undefined ? this.store.db.all<CheckoutRow>(`${ROW_SQL} ORDER BY c.id`) : this.store.db.all<CheckoutRow>(`${ROW_SQL} WHERE c.vault_id = ? ORDER BY c.id`, this.store.getVault(vault).id);
    return rows.map(toInfo);
  }

  /** The checkout registered at `dir` (resolved on the host), if any. */
  find(dir: string): CheckoutInfo | undefined {
    const row = this.findRow(dir);
    return row && toInfo(row);
  }

  private findRow(dir: string): CheckoutRow | undefined {
    const abs = resolveHost(dir);
    const row = this.store.db.get<CheckoutRow>(`${ROW_SQL} WHERE c.dir = ?`, abs);
    if (row) return row;
    let real: string;
    try {
      real = realpathSync(abs);
    } catch {
      return undefined;
    }
    return this.store.db.get<CheckoutRow>(`${ROW_SQL} WHERE c.dir = ?`, real);
  }

  private mustFind(dir: string): CheckoutRow {
    const row = this.findRow(dir);
    if (!row) throw new CorralError('CHECKOUT_NOT_FOUND', `${resolveHost(dir)} is not a Corral checkout: make one with 'corral checkout VAULT DIR'`, { hostPath: resolveHost(dir) });
    return row;
  }

  private rowById(id: number): CheckoutRow {
    const row = this.store.db.get<CheckoutRow>(`${ROW_SQL} WHERE c.id = ?`, id);
    if (!row) throw new CorralError('CHECKOUT_NOT_FOUND', `no checkout with id ${id}`, { id });
    return row;
  }

  /** Where checkouts keep their state (indexes, warm directories): made on first use, never a symlink. */
  private stateDir(): string {
    const dir = join(this.store.home, 'checkouts');
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!lstatSync(dir).isDirectory()) throw unsafeHostPath(dir, 'is not a directory');
    } catch (e) {
      throw hostError(e, dir);
    }
    return dir;
  }

  private indexPath(id: number): string {
    return join(this.stateDir(), `${id}.index.json`);
  }

  private loadIndex(id: number): StatIndex {
    return loadIndex(join(this.store.home, 'checkouts', `${id}.index.json`));
  }

  // ---- user checkouts -----------------------------------------------------------------------

  /**
   * Writes the vault (its head, or `ref`) into `dir` and registers it. `dir` is created when missing
   * and must be empty unless `force`; nothing is written through a symlink found there.
   */
  checkout(vault: string, dir: string, options: { ref?: string; force?: boolean } = {}): CheckoutResult {
    const v = this.store.getVault(vault);
    const commit = options.ref === undefined ? this.store.getCommit(v.head) : this.store.resolveRef(v, options.ref);
    const abs = resolveHost(dir);
    const home = resolveHost(this.store.home);
    if (isHostWithin(abs, home) || isHostWithin(home, abs))
      throw new CorralError('INVALID_ARGUMENT', `${abs} overlaps the Corral home ${home}: check out somewhere else`, { hostPath: abs });
    const real = realPathOf(abs);
    for (const other of this.store.db.all<CheckoutRow>(ROW_SQL)) {
      if (other.dir === real) {
        if (!options.force || other.kind !== 'user')
          throw new CorralError('PATH_EXISTS', `${real} is already a checkout of vault '${other.vault}': commit there, or pass --force to check out again over it`, { hostPath: real, vault: other.vault });
      } else if (isHostWithin(real, other.dir) || isHostWithin(other.dir, real)) {
        throw new CorralError('INVALID_ARGUMENT', `${real} overlaps the checkout ${other.dir} of vault '${other.vault}': check out somewhere else`, { hostPath: real, other: other.dir });
      }
    }
    ensureHostDir(real);
    if (realpathSync(real) !== real) throw new CorralError('CONFLICT', `${abs} changed while it was checked: retry`, { hostPath: abs });
    const r = this.transfer.exportDir(vault, '/', real, { ref: commit.id, force: options.force === true });
    const id = this.store.write(this.caller, vault, { op: 'checkout.create', target: real, details: { commit: commit.id } }, () => {
      this.store.db.run('DELETE FROM checkouts WHERE dir = ?', real);
      const now = this.store.now();
      return this.store.db.run("INSERT INTO checkouts(vault_id, dir, kind, base, created_at, updated_at) VALUES (?, ?, 'user', ?, ?, ?)", v.id, real, commit.id, now, now).lastInsertRowid;
    });
    saveIndex(this.indexPath(id), buildIndex(real, commit.tree, this.objects));
    return { vault, dir: real, commit: commit.id, files: r.files, symlinks: r.symlinks, dirs: r.dirs, bytes: r.bytes };
  }

  /** What `commit` would commit, without committing. */
  status(dir: string): StatusResult {
    const row = this.mustFind(dir);
    const v = this.store.getVault(row.vault);
    const base = this.store.getCommit(row.base);
    const scan = scanDir(row.dir, this.loadIndex(row.id), this.objects, base.tree);
    // The trees are built in a transaction that is rolled back: status stores nothing.
    const rollback = Symbol('rollback');
    let out: { summary: FileChange[]; conflicts: string[] } = { summary: [], conflicts: [] };
    try {
      this.store.db.transaction(() => {
        const head = this.store.getCommit(this.store.getVault(row.vault).head);
        const mine = this.applyToTree(base.tree, scan, v.quota.maxFileSize);
        const conflicts = head.id === base.id ? [] : conflictPaths(structuralDiff(this.objects, base.tree, mine), structuralDiff(this.objects, base.tree, head.tree));
        out = { summary: this.summary(base.tree, mine), conflicts };
        throw rollback;
      });
    } catch (e) {
      if (e !== rollback) throw e;
    }
    // What the scan learnt spares the next one from hashing the same files again.
    saveIndex(this.indexPath(row.id), { tree: base.tree, entries: scan.observed });
    return { vault: row.vault, dir: row.dir, base: base.id, head: v.head, summary: out.summary, skipped: scan.skipped, conflicts: out.conflicts };
  }

  /**
   * Commits what changed in the checkout `dir` since its base, onto the vault's head. When the head
   * moved since, paths changed on both sides make it fail with CONFLICT (nothing is committed);
   * otherwise the vault's changes are brought into the directory afterwards.
   */
  commit(dir: string, message: string, options: { patch?: boolean } = {}): CommitResult {
    const row = this.mustFind(dir);
    const base = this.store.getCommit(row.base);
    const scan = scanDir(row.dir, this.loadIndex(row.id), this.objects, base.tree);
    let mine = base.tree;
    let headTree = base.tree;
    const details: Record<string, unknown> = { checkout: row.dir, base: base.id };
    // Not one transaction with the base update below, so a refused commit stays in the audit log.
    // A crash in between only makes the next commit redo the same changes: identical changes on
    // both sides are no conflict, and re-applying them changes nothing.
    const { commit } = this.store.mutate(this.caller, row.vault, { op: 'checkout.commit', target: row.dir, message, details }, (editor, v) => {
      const now = this.store.db.get<{ base: string }>('SELECT base FROM checkouts WHERE id = ?', row.id);
      if (now?.base !== base.id) throw new CorralError('CONFLICT', `the checkout ${row.dir} was committed or synced meanwhile: retry`, { hostPath: row.dir });
      const head = this.store.getCommit(v.head);
      headTree = head.tree;
      mine = this.applyToTree(base.tree, scan, v.quota.maxFileSize, editor.mtime);
      const my = structuralDiff(this.objects, base.tree, mine);
      if (head.id !== base.id) {
        const conflicts = conflictPaths(my, structuralDiff(this.objects, base.tree, head.tree));
        if (conflicts.length > 0)
          throw new CorralError('CONFLICT', `vault '${v.name}' changed since this checkout's base at ${conflicts.slice(0, 5).join(', ')}${conflicts.length > 5 ? ` and ${conflicts.length - 5} more` : ''}; nothing was committed: move your changes aside, check out the head again, and redo them`, { paths: conflicts, base: base.id, head: head.id });
      }
      applyDeltas(editor, my);
      details.summary = countSummary(this.summary(head.tree, editor.flush().hash));
    });
    if (commit) this.store.db.run('UPDATE checkouts SET base = ?, updated_at = ? WHERE id = ? AND base = ?', commit.id, this.store.now(), row.id, base.id);
    let observed = scan.observed;
    if (commit && commit.tree !== mine) {
      // Applied onto a head that moved: bring the vault's other changes into the directory too.
      observed = this.syncDir(row.dir, commit.tree, deltaPaths(structuralDiff(this.objects, mine, commit.tree)), observed);
    }
    saveIndex(this.indexPath(row.id), { tree: commit?.tree ?? base.tree, entries: observed });
    const changes = commit ? this.summary(headTree, commit.tree) : [];
    const result: CommitResult = { commit, changes, skipped: scan.skipped };
    if (options.patch) result.patch = commit ? this.patchText(headTree, commit) : '';
    return result;
  }

  /** Unregisters a checkout. A user checkout's files stay; a warm checkout's directory is removed. */
  remove(dir: string): void {
    const row = this.mustFind(dir);
    this.store.write(this.caller, row.vault, { op: 'checkout.remove', target: row.dir }, () => this.store.db.run('DELETE FROM checkouts WHERE id = ?', row.id));
    rmSync(join(this.store.home, 'checkouts', `${row.id}.index.json`), { force: true });
    if (row.kind === 'warm') rmSync(row.dir, { recursive: true, force: true });
  }

  // ---- warm checkouts and execs -------------------------------------------------------------

  /**
   * A throwaway checkout of the vault's head, for an overlay exec that must not wait for the warm
   * one (pinned at an older commit by a long-running exec). Its name carries this process's pid, so
   * the ones a dead process left are removed here. `release` deletes it.
   */
  privateCheckout(vault: string): WarmCheckout & { release: () => void } {
    const v = this.store.getVault(vault);
    const head = this.store.getCommit(v.head);
    const root = this.stateDir();
    for (const name of readdirSync(root)) {
      const pid = Number(/^\.private-(\d+)-/.exec(name)?.[1]);
      if (pid && pid !== process.pid && !pidAlive(pid)) rmSync(join(root, name), { recursive: true, force: true });
    }
    const dir = join(root, `.private-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      this.transfer.exportDir(vault, '/', dir, { ref: head.id });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw hostError(e, dir);
    }
    return { id: -1, dir, base: head.id, tree: head.tree, release: () => rmSync(dir, { recursive: true, force: true }) };
  }

  /**
   * For a vault with no warm checkout of its own: another vault's warm checkout at exactly this
   * vault's head (a fresh fork's source), with that vault's id for its lock. Reads only.
   */
  borrowableWarm(vault: string): (WarmCheckout & { ownerVaultId: number }) | undefined {
    const v = this.store.getVault(vault);
    if (this.store.db.get("SELECT 1 AS x FROM checkouts WHERE vault_id = ? AND kind = 'warm'", v.id)) return undefined;
    const row = this.store.db.get<CheckoutRow>(`${ROW_SQL} WHERE c.kind = 'warm' AND c.base = ? AND c.vault_id != ? LIMIT 1`, v.head, v.id);
    if (!row || !lstatSync(row.dir, { throwIfNoEntry: false })?.isDirectory()) return undefined;
    return { id: row.id, dir: row.dir, base: row.base, tree: this.store.getCommit(row.base).tree, ownerVaultId: row.vault_id };
  }

  /** Whether checkout `id` is still at `commit` (checked again under its lease). */
  isAt(id: number, commit: string): boolean {
    return this.store.db.get<{ base: string }>('SELECT base FROM checkouts WHERE id = ?', id)?.base === commit;
  }

  /** The vault's warm checkout when it is already at the head (nothing to sync); undefined otherwise. Reads only. */
  currentWarm(vault: string): WarmCheckout | undefined {
    const v = this.store.getVault(vault);
    const row = this.store.db.get<CheckoutRow>(`${ROW_SQL} WHERE c.vault_id = ? AND c.kind = 'warm'`, v.id);
    if (!row || row.base !== v.head || !lstatSync(row.dir, { throwIfNoEntry: false })?.isDirectory()) return undefined;
    return { id: row.id, dir: row.dir, base: row.base, tree: this.store.getCommit(row.base).tree };
  }

  /**
   * The vault's warm checkout, created or synced to the head (O(changes) since its base). Callers
   * must not run two of these (or a sync) for one vault at once, nor while it is an overlay's lower layer.
   */
  warm(vault: string, options: { rescan?: boolean } = {}): WarmCheckout {
    const v = this.store.getVault(vault);
    const head = this.store.getCommit(v.head);
    const row = this.store.db.get<CheckoutRow>(`${ROW_SQL} WHERE c.vault_id = ? AND c.kind = 'warm'`, v.id);
    // A directory that went missing, or whose base is gone (a vault id reused after a delete), is made afresh.
    if (row && this.store.findCommit(row.base) && lstatSync(row.dir, { throwIfNoEntry: false })?.isDirectory()) {
      // rescan: an exec died while writing here, so the directory may not match its base any more.
      if (options.rescan) this.syncTo(row.id, head.id);
      else if (row.base !== head.id) this.syncTo(row.id, head.id, { scan: false });
      return { id: row.id, dir: row.dir, base: head.id, tree: head.tree };
    }
    const root = this.stateDir();
    if (row) rmSync(join(root, `${row.id}.index.json`), { force: true });
    const dir = join(root, `warm-${v.id}`);
    // Made aside and renamed into place, so a half-made directory is never taken for a checkout.
    const tmp = join(root, `.warm-${v.id}-${randomBytes(6).toString('hex')}`);
    try {
      this.transfer.exportDir(vault, '/', tmp, { ref: head.id });
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw hostError(e, dir);
    }
    const id = this.store.write(this.caller, vault, { op: 'checkout.warm', target: dir, details: { commit: head.id } }, () => {
      this.store.db.run('DELETE FROM checkouts WHERE dir = ?', dir);
      const now = this.store.now();
      return this.store.db.run("INSERT INTO checkouts(vault_id, dir, kind, base, created_at, updated_at) VALUES (?, ?, 'warm', ?, ?, ?)", v.id, dir, head.id, now, now).lastInsertRowid;
    });
    saveIndex(this.indexPath(id), buildIndex(dir, head.tree, this.objects));
    return { id, dir, base: head.id, tree: head.tree };
  }

  /** What changed in checkout `checkoutId` since its base: exact (stat index, candidates hashed), O(files). */
  scan(checkoutId: number): FsChangeSet {
    const row = this.rowById(checkoutId);
    const base = this.store.getCommit(row.base);
    const scan = scanDir(row.dir, this.loadIndex(row.id), this.objects, base.tree);
    saveIndex(this.indexPath(row.id), { tree: base.tree, entries: scan.observed });
    return { changes: scan.changes, skipped: scan.skipped };
  }

  /**
   * Commits a change set (from scanChanges or readUpperChanges) onto the vault's current head: one
   * commit and one audit record. Returns the commit (null when nothing changed) and its summary.
   */
  commitChanges(vault: string, set: FsChangeSet, op: { message: string; op: string; origin?: Origin; details?: Record<string, unknown> }, options: { base?: string } = {}): { commit: Commit | null; changes: FileChange[] } {
    let before = EMPTY_TREE;
    let after = EMPTY_TREE;
    const details: Record<string, unknown> = { ...op.details, skipped: set.skipped.length };
    const { commit } = this.store.mutate(this.caller, vault, { op: op.op, target: '/', message: op.message, origin: op.origin, details }, (editor, v) => {
      before = this.store.getCommit(v.head).tree;
      // Checked inside the commit's transaction: nothing can land between the check and the commit.
      if (options.base !== undefined && v.head !== options.base) {
        const paths = overlapping(set, diffTrees(this.objects, this.store.getCommit(options.base).tree, before).map((c) => c.path));
        if (paths.length > 0)
          throw new CorralError('CONFLICT', `the vault changed since this work began at ${paths.slice(0, 5).join(', ')}${paths.length > 5 ? '…' : ''}: nothing was committed; redo it on the new head`, { paths });
      }
      applyFsChanges(editor, set, v.quota.maxFileSize, this.objects);
      after = editor.flush().hash;
      details.summary = countSummary(this.summary(before, after));
    });
    return { commit, changes: commit ? this.summary(before, commit.tree) : [] };
  }

  /**
   * Makes checkout `checkoutId` match `commit` and refreshes its index. By default the directory is
   * scanned first, so whatever was written there (an in-place exec) is put back: exact, O(files).
   * `scan: false` trusts that the directory still matches its base (it was only an overlay's lower
   * layer) and touches only what changed between the base and `commit`: O(changes).
   */
  syncTo(checkoutId: number, commit: string, options: { scan?: boolean } = {}): void {
    const row = this.rowById(checkoutId);
    const target = this.store.getCommit(commit);
    const base = this.store.getCommit(row.base);
    // Without a scan the index is left as it is: the entries of files rewritten here no longer match
    // their stat (ctime always moves), so the next scan re-hashes them. That keeps the index exact
    // without rewriting it whole, which would make an overlay exec's sync O(files).
    const index = options.scan === false ? undefined : this.loadIndex(row.id);
    const paths = deltaPaths(structuralDiff(this.objects, base.tree, target.tree));
    let known = index?.entries ?? new Map<string, IndexEntry>();
    if (options.scan !== false) {
      const scan = scanDir(row.dir, index!, this.objects, base.tree);
      known = scan.observed;
      for (const c of scan.changes) {
        const full = c.op !== 'dir' || lookup(this.objects, base.tree, c.path)?.kind !== 'dir';
        if (full || !paths.has(c.path)) paths.set(c.path, full ? 'full' : 'shallow');
      }
      for (const s of scan.skipped) paths.set(s.path, 'full');
    }
    const entries = this.syncDir(row.dir, target.tree, paths, known);
    this.store.write(this.caller, row.vault, { op: 'checkout.sync', target: row.dir, details: { from: base.id, to: target.id } }, () =>
      this.store.db.run('UPDATE checkouts SET base = ?, updated_at = ? WHERE id = ?', target.id, this.store.now(), row.id),
    );
    if (index) saveIndex(this.indexPath(row.id), { tree: target.tree, entries });
  }

  // ---- internals ----------------------------------------------------------------------------

  /** `tree` with the change set applied; its objects are written (inside the caller's transaction). */
  private applyToTree(tree: string, set: FsChangeSet, maxFileSize: number | null, now = this.store.now()): string {
    const editor = new TreeEditor(this.objects, tree, now, { maxFileSize });
    applyFsChanges(editor, set, maxFileSize, this.objects);
    return editor.flush().hash;
  }

  /** The summary of what changed from tree `a` to tree `b`: diffTrees, plus empty directories and directory modes. */
  summary(a: string, b: string): FileChange[] {
    const all: Change[] = [...diffTrees(this.objects, a, b), ...dirChanges(this.objects, a, b, '/')];
    all.sort((x, y) => comparePaths(x.path, y.path));
    return all.map((c) => toFileChange(c, this.objects));
  }

  private patchText(fromTree: string, commit: Commit): string {
    const d = this.history.diffCommits(fromTree, commit.tree, commit.parent ?? '(none)', commit.id, true);
    return d.changes.map((c) => c.patch ?? (c.binary ? `Binary files ${c.change === 'added' ? '/dev/null' : 'a' + c.path} and ${c.change === 'deleted' ? '/dev/null' : 'b' + c.path} differ\n` : '')).join('');
  }

  /**
   * Makes the directory `dir` match `tree` at `paths` ('full': the path and everything below;
   * 'shallow': a directory's mode only). Returns the index entries: `known` minus what was
   * rewritten, plus the files written.
   */
  private syncDir(dir: string, tree: string, paths: Map<string, 'full' | 'shallow'>, known: Map<string, IndexEntry>): Map<string, IndexEntry> {
    const sorted = [...paths.keys()].sort(comparePaths);
    const done = new Set<string>();
    const written: [string, Entry][] = [];
    const under = (p: string): boolean => {
      for (let q = p; q !== '/'; q = parentOf(q)) if (done.has(q)) return true;
      return false;
    };
    const root = realDir(dir);
    for (const p of sorted) {
      if (under(p)) continue;
      const parent = this.hostParent(root, p, tree, done, written);
      if (!parent) continue;
      const host = root.path + p;
      const t = lookup(this.objects, tree, p);
      const h = lstatSync(host, { throwIfNoEntry: false });
      if (paths.get(p) === 'shallow' && t?.kind === 'dir' && h?.isDirectory()) {
        chmodDir(host, t.mode & 0o7777, h);
        continue;
      }
      this.replaceHost(host, p, t, h, parent, written);
      done.add(p);
    }
    const out = new Map<string, IndexEntry>();
    for (const [p, e] of known) if (!under(p)) out.set(p, e);
    const recordedAt = Date.now();
    for (const [p, e] of written) {
      const entry = indexFile(root.path + p, p, e, recordedAt);
      if (entry) out.set(p, entry);
    }
    return out;
  }

  /**
   * The host directory above vault path `p`, each component checked to be a real directory; one the
   * tree has as a directory but the host does not (a symlink, a file) is rewritten from the tree.
   * Undefined when the tree has no directory there either (nothing to do).
   */
  private hostParent(root: HostDir, p: string, tree: string, done: Set<string>, written: [string, Entry][]): HostDir | undefined {
    let dir = root;
    let at = '/';
    for (const part of splitPath(parentOf(p))) {
      at = joinPath(at, part);
      const host = dir.path + '/' + part;
      const h = lstatSync(host, { throwIfNoEntry: false });
      if (h?.isDirectory()) {
        dir = { path: host, dev: h.dev, ino: h.ino, follow: false };
        continue;
      }
      this.replaceHost(host, at, lookup(this.objects, tree, at), h, dir, written);
      done.add(at);
      return undefined;
    }
    return dir;
  }

  /** Removes what the host has at `host` and writes tree entry `t` (with everything below) there. */
  private replaceHost(host: string, p: string, t: Entry | undefined, h: Stats | undefined, parent: HostDir, written: [string, Entry][]): void {
    try {
      if (h) rmSync(host, { recursive: true, force: true });
      if (t) this.writeEntry(host, p, t, parent, written);
    } catch (e) {
      throw hostError(e, host);
    }
  }

  private writeEntry(host: string, p: string, e: Entry, parent: HostDir, written: [string, Entry][]): void {
    if (e.kind === 'file') {
      // A checkout never holds a setuid or setgid file, whatever the vault says (as root it would be a real one).
      writeHostFile(host, this.objects.getBlob(e.hash), e.mode & 0o777, e.mtime, false, parent);
      written.push([p, e]);
    } else if (e.kind === 'symlink') {
      writeHostLink(host, decoder.decode(this.objects.getBlob(e.hash)), e.mtime, false, parent);
    } else {
      mkdirSync(host, 0o700);
      const st = lstatSync(host);
      const made: HostDir = { path: host, dev: st.dev, ino: st.ino, follow: false };
      for (const child of this.objects.getTree(e.hash)) {
        checkEntryName(child.name, p);
        this.writeEntry(host + '/' + child.name, joinPath(p, child.name), child, made, written);
      }
      finishHostDir(host, e.mode & 0o7777, e.mtime, made);
    }
  }
}

function toInfo(r: CheckoutRow): CheckoutInfo {
  return { id: r.id, vault: r.vault, dir: r.dir, kind: r.kind, base: r.base, createdAt: r.created_at, updatedAt: r.updated_at };
}

/** Host path containment by components (resolved paths). */
function isHostWithin(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(ancestor.endsWith(sep) ? ancestor : ancestor + sep);
}

/** The real path of `abs`, or of its nearest existing ancestor with the rest appended (for a directory not made yet). */
function realPathOf(abs: string): string {
  const rest: string[] = [];
  let at = abs;
  for (;;) {
    try {
      return join(realpathSync(at), ...rest.reverse());
    } catch (e) {
      const code = errnoCode(e);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw hostError(e, at);
      const up = dirname(at);
      if (up === at) throw hostError(e, abs);
      rest.push(basename(at));
      at = up;
    }
  }
}

function realDir(dir: string): HostDir {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new CorralError('PATH_NOT_FOUND', `${dir} is not a directory any more: check it out again`, { hostPath: dir });
  return { path: dir, dev: st.dev, ino: st.ino, follow: false };
}

function chmodDir(host: string, mode: number, was: Stats): void {
  let fd: number;
  try {
    fd = openSync(host, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (e) {
    if (errnoCode(e) === 'ELOOP' || errnoCode(e) === 'ENOTDIR') throw unsafeHostPath(host, 'was replaced while syncing');
    throw hostError(e, host);
  }
  try {
    const st = fstatSync(fd);
    if (st.dev !== was.dev || st.ino !== was.ino) throw unsafeHostPath(host, 'was replaced while syncing');
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** Orders paths parents first, then by name (component-wise, so '/a/b' comes before '/a-b'). */
/** The paths of `set` (not bare directories) that equal, hold or lie below one of `theirs`. */
function overlapping(set: FsChangeSet, theirs: string[]): string[] {
  const overlaps = (a: string, b: string): boolean => a === b || b.startsWith(a === '/' ? a : a + '/') || a.startsWith(b + '/');
  const mine = set.changes.filter((c) => c.op !== 'dir').map((c) => c.path);
  return [...new Set(mine.filter((m) => theirs.some((t) => overlaps(m, t))))].sort();
}

export function comparePaths(a: string, b: string): number {
  const x = splitPath(a);
  const y = splitPath(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * The smallest set of changes turning tree `a` into tree `b`: paths replaced or removed as a whole
 * (only where the trees differ), and directory mode changes.
 */
export function structuralDiff(objects: ObjectStore, a: string, b: string, prefix = '/', out: Delta[] = []): Delta[] {
  if (a === b) return out;
  const x = new Map(objects.getTree(a).map((e) => [e.name, e]));
  const y = new Map(objects.getTree(b).map((e) => [e.name, e]));
  for (const name of new Set([...x.keys(), ...y.keys()])) {
    const p = joinPath(prefix, name);
    const old = x.get(name);
    const now = y.get(name);
    if (old?.kind === 'dir' && now?.kind === 'dir') {
      if (old.mode !== now.mode) out.push({ path: p, op: 'mode', mode: now.mode });
      structuralDiff(objects, old.hash, now.hash, p, out);
    } else if (!old || !now || old.kind !== now.kind || old.hash !== now.hash || old.mode !== now.mode) {
      out.push({ path: p, op: 'replace', entry: now });
    }
  }
  return out;
}

/** Paths of deltas as sync work: replacements whole, mode changes shallow. */
function deltaPaths(deltas: Delta[]): Map<string, 'full' | 'shallow'> {
  return new Map(deltas.map((d) => [d.path, d.op === 'replace' ? 'full' : 'shallow']));
}

/**
 * Paths both sides changed: the same path, or one replaced as a whole above a change of the other
 * (a directory mode change above a change below is no conflict).
 */
export function conflictPaths(mine: Delta[], theirs: Delta[]): string[] {
  const index = (ds: Delta[]): Map<string, Delta> => new Map(ds.map((d) => [d.path, d]));
  const a = index(mine);
  const b = index(theirs);
  const out = new Set<string>();
  const check = (ds: Delta[], other: Map<string, Delta>): void => {
    for (const d of ds) {
      const twin = other.get(d.path);
      if (twin) {
        // Both sides made the very same change: nothing to choose between.
        if (!sameDelta(d, twin)) out.add(d.path);
        continue;
      }
      for (let p = parentOf(d.path); p !== '/'; p = parentOf(p)) {
        if (other.get(p)?.op === 'replace') {
          out.add(p);
          break;
        }
      }
    }
  };
  check(mine, b);
  check(theirs, a);
  return [...out].sort(comparePaths);
}

function sameDelta(a: Delta, b: Delta): boolean {
  if (a.op === 'mode' || b.op === 'mode') return a.op === 'mode' && b.op === 'mode' && a.mode === b.mode;
  if (!a.entry || !b.entry) return a.entry === b.entry;
  return a.entry.kind === b.entry.kind && a.entry.hash === b.entry.hash && a.entry.mode === b.entry.mode;
}

/** Replays deltas (computed from a base the editor's tree equals at those paths) onto the editor. */
function applyDeltas(editor: TreeEditor, deltas: Delta[]): void {
  for (const d of [...deltas].sort((x, y) => comparePaths(x.path, y.path))) {
    if (d.op === 'mode') {
      const e = editor.entry(d.path);
      if (e?.kind === 'dir') editor.set(d.path, { ...e, mode: d.mode });
    } else if (d.entry) {
      const cur = editor.lstat(d.path);
      if (cur && cur.kind === d.entry.kind && cur.hash === d.entry.hash && cur.mode === d.entry.mode) continue;
      editor.mkdirs(parentOf(d.path));
      editor.set(d.path, d.entry);
    } else if (editor.lstat(d.path)) {
      editor.remove(d.path);
    }
  }
}

/** Directories added or deleted that hold no files (the topmost such), and directory mode changes. */
function dirChanges(objects: ObjectStore, a: string, b: string, prefix: string, out: Change[] = []): Change[] {
  if (a === b) return out;
  const x = new Map(objects.getTree(a).map((e) => [e.name, e]));
  const y = new Map(objects.getTree(b).map((e) => [e.name, e]));
  const bare = (e: Entry, p: string, change: 'added' | 'deleted'): void => {
    if (e.kind !== 'dir') return;
    if ((e.files ?? 0) === 0) {
      out.push(change === 'added' ? { path: p, change, kind: 'dir', newSize: 0, newMode: e.mode } : { path: p, change, kind: 'dir', oldSize: 0, oldMode: e.mode });
      return;
    }
    for (const c of objects.getTree(e.hash)) bare(c, joinPath(p, c.name), change);
  };
  for (const name of new Set([...x.keys(), ...y.keys()])) {
    const p = joinPath(prefix, name);
    const old = x.get(name);
    const now = y.get(name);
    if (old?.kind === 'dir' && now?.kind === 'dir') {
      if (old.mode !== now.mode) out.push({ path: p, change: 'modified', kind: 'dir', oldSize: 0, newSize: 0, oldMode: old.mode, newMode: now.mode });
      dirChanges(objects, old.hash, now.hash, p, out);
    } else {
      if (old) bare(old, p, 'deleted');
      if (now) bare(now, p, 'added');
    }
  }
  return out;
}

function toFileChange(c: Change, objects: ObjectStore): FileChange {
  const gone = c.change === 'deleted';
  const fc: FileChange = { path: c.path, change: c.change, kind: c.kind, size: (gone ? c.oldSize : c.newSize) ?? 0 };
  if (c.oldKind !== undefined) fc.oldKind = c.oldKind;
  if (c.change === 'modified') fc.oldSize = c.oldSize ?? 0;
  const mode = gone ? c.oldMode : c.newMode;
  if (mode !== undefined) fc.mode = mode;
  if (c.change === 'modified' && c.oldMode !== c.newMode && c.oldMode !== undefined) fc.oldMode = c.oldMode;
  const target = (hash: string | undefined): string | undefined => (hash === undefined ? undefined : decoder.decode(objects.getBlob(hash)));
  if (c.kind === 'symlink') fc.target = target(gone ? c.oldHash : c.newHash);
  if (c.change === 'modified' && (c.oldKind ?? c.kind) === 'symlink' && c.oldHash !== c.newHash) fc.oldTarget = target(c.oldHash);
  return fc;
}

function countSummary(changes: FileChange[]): { added: number; modified: number; deleted: number } {
  const s = { added: 0, modified: 0, deleted: 0 };
  for (const c of changes) s[c.change]++;
  return s;
}

