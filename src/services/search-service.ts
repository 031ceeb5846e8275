// Finding things in a vault: `find` (names, kinds, sizes, depths, tags, metadata), `grep` (regular
// expressions over text files) and `search` (SQLite FTS5 full text, ranked by bm25).
//
// The full-text index holds each vault's head: one document per text file, tagged with a scope
// token naming the vault, so a query intersects the posting lists of its words with the vault's
// and costs the size of that head, not of every version ever written. A write, a checkpoint
// restore or a fork never touches the index: `fts_state` records the head tree each vault's index
// reflects, and a search first catches up by diffing that tree with the head (O(changes)).
import { Script, createContext } from 'node:vm';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { baseName, normalizePath, validateMetaKey, validateTag } from '../protocol/paths.ts';
import type { Commit, CorralStore, Vault } from '../store/corral-store.ts';
import type { Database } from '../store/database.ts';
import { EMPTY_TREE, type Entry, type EntryKind } from '../store/object-store.ts';
import { diffTrees, walkTree, type Change } from '../store/tree-diff.ts';
import type { ServiceDeps } from './corral.ts';
import { TreeReader } from '../store/tree-reader.ts';
import { isBinary } from './history-service.ts';
import { pathsWithMeta, pathsWithTag } from './tag-service.ts';

// ---- globs -------------------------------------------------------------------------------------

type GlobToken = { t: 'char'; c: string } | { t: 'any' } | { t: 'star' } | { t: 'class'; negate: boolean; items: (string | [string, string])[] };

/** Longest glob accepted: a name is at most 255 bytes, so longer patterns are mistakes. */
const MAX_GLOB_LENGTH = 1024;

function tokenizeGlob(pattern: string): GlobToken[] {
  const chars = Array.from(pattern);
  const out: GlobToken[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\' && i + 1 < chars.length) out.push({ t: 'char', c: chars[++i]! });
    else if (c === '?') out.push({ t: 'any' });
    else if (c === '*') {
      if (out[out.length - 1]?.t !== 'star') out.push({ t: 'star' });
    } else if (c === '[') {
      // A class: [abc], [a-z], [!abc] or [^abc]; a ']' right after the opening is literal.
      let j = i + 1;
      const negate = chars[j] === '!' || chars[j] === '^';
      if (negate) j++;
      const items: (string | [string, string])[] = [];
      let first = true;
      let closed = false;
      for (; j < chars.length; j++) {
        let ch = chars[j]!;
        if (ch === ']' && !first) {
          closed = true;
          break;
        }
        first = false;
        if (ch === '\\' && j + 1 < chars.length) ch = chars[++j]!;
        if (chars[j + 1] === '-' && j + 2 < chars.length && chars[j + 2] !== ']') {
          let hi = chars[j + 2]!;
          j += 2;
          if (hi === '\\' && j + 1 < chars.length) hi = chars[++j]!;
          items.push([ch, hi]);
        } else items.push(ch);
      }
      if (closed) {
        out.push({ t: 'class', negate, items });
        i = j;
      } else out.push({ t: 'char', c: '[' }); // An unclosed '[' matches itself, as in the shell.
    } else out.push({ t: 'char', c });
  }
  return out;
}

function tokenMatches(tok: GlobToken, ch: string): boolean {
  switch (tok.t) {
    case 'char':
      return tok.c === ch;
    case 'any':
      return true;
    case 'class': {
      const cp = ch.codePointAt(0)!;
      const hit = tok.items.some((it) => (typeof it === 'string' ? it === ch : it[0].codePointAt(0)! <= cp && cp <= it[1].codePointAt(0)!));
      return hit !== tok.negate;
    }
    case 'star':
      return false;
  }
}

/**
 * Compiles a shell glob (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`, `\` escapes) into a matcher of whole
 * names. It backtracks only to the last `*`, so a match costs at most O(pattern × name): no
 * pattern can make it run away, unlike a naive translation to a regular expression.
 */
export function compileGlob(pattern: string): (name: string) => boolean {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new CorralError('INVALID_ARGUMENT', 'a name pattern must not be empty: use * to match every name');
  if (pattern.length > MAX_GLOB_LENGTH) throw new CorralError('INVALID_ARGUMENT', `a name pattern is at most ${MAX_GLOB_LENGTH} characters`, { length: pattern.length });
  if (pattern.includes('\0')) throw new CorralError('INVALID_ARGUMENT', 'a name pattern must not contain NUL');
  const tokens = tokenizeGlob(pattern);
  return (name: string): boolean => {
    const s = Array.from(name);
    let p = 0;
    let i = 0;
    let starP = -1;
    let starI = 0;
    while (i < s.length) {
      const tok = tokens[p];
      if (tok && tok.t === 'star') {
        starP = p++;
        starI = i;
      } else if (tok && tokenMatches(tok, s[i]!)) {
        p++;
        i++;
      } else if (starP >= 0) {
        p = starP + 1;
        i = ++starI;
      } else return false;
    }
    while (tokens[p]?.t === 'star') p++;
    return p === tokens.length;
  };
}

// ---- sizes ---------------------------------------------------------------------------------------

export interface SizeTest {
  /** gt: larger than, lt: smaller than, eq: exactly. */
  op: 'gt' | 'lt' | 'eq';
  bytes: number;
}

/** `+N` (larger than), `-N` (smaller than) or `N` (exactly), in bytes or with c, k, M, G (powers of 1024). */
export function parseSizeTest(text: string): SizeTest {
  const m = typeof text === 'string' ? /^([+-]?)(\d{1,15})([ckmg]?)$/i.exec(text.trim()) : null;
  if (!m) throw new CorralError('INVALID_ARGUMENT', `size must look like +10k (larger than), -1M (smaller than) or 512 (exactly), got '${String(text).slice(0, 40)}'`, { size: String(text).slice(0, 40) });
  const unit = { '': 1, c: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[3]!.toLowerCase() as '' | 'c' | 'k' | 'm' | 'g'];
  const bytes = Number(m[2]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new CorralError('INVALID_ARGUMENT', `size is too large: ${text}`, { size: text });
  return { op: m[1] === '+' ? 'gt' : m[1] === '-' ? 'lt' : 'eq', bytes };
}

function sizeMatches(test: SizeTest, size: number): boolean {
  return test.op === 'gt' ? size > test.bytes : test.op === 'lt' ? size < test.bytes : size === test.bytes;
}

// ---- results -------------------------------------------------------------------------------------

export interface FindOptions {
  /** A checkpoint, commit id or HEAD~N instead of the head. */
  ref?: string;
  /** A shell glob on the base name. */
  name?: string;
  type?: 'f' | 'd' | 'l';
  /** `+N`, `-N` or `N` with an optional k, M, G suffix (see parseSizeTest). A directory's size is the bytes below it. */
  size?: string;
  /** Levels below the start, as find(1): the start is depth 0, its entries depth 1. */
  maxDepth?: number;
  minDepth?: number;
  /** Only paths with every one of these tags. */
  tags?: string[];
  /** `KEY=VALUE` (exact value) or `KEY` (has the key); every one must hold. */
  meta?: string[];
}

export interface FindMatch {
  path: string;
  kind: EntryKind;
  size: number;
  mode: number;
  mtime: number;
}

export interface GrepOptions {
  ref?: string;
  ignoreCase?: boolean;
  /** Stop each file after this many matching lines (grep -m). */
  maxCount?: number;
  /** Stop each file at its first match (grep -l). */
  filesOnly?: boolean;
  /** Stop the whole search after this many matching lines. */
  limit?: number;
  /** Stop the whole search after this long, with what was found so far (default GREP_TIME_BUDGET_MS). */
  timeBudgetMs?: number;
}

export interface GrepMatch {
  path: string;
  line: number;
  text: string;
  /** Set when the line was cut to MAX_LINE_CHARS around the match (always for a line longer than GREP_MAX_LINE_CHARS, matched on its start only). */
  truncated?: boolean;
}

export interface GrepSkipped {
  path: string;
  reason: 'too-large' | 'binary' | 'symlink';
  size: number;
}

export interface GrepResult {
  matches: GrepMatch[];
  /** Matching lines per file, for files with at least one. */
  counts: { path: string; count: number }[];
  /** Files with at least one match. */
  files: number;
  /** Files read and searched. */
  searched: number;
  skipped: GrepSkipped[];
  /** True when the search stopped early: at `limit` matches, or when its time ran out (`timedOut`). */
  truncated: boolean;
  /** True when the search stopped at its time budget: the result holds what was found until then. */
  timedOut: boolean;
}

export interface SearchOptions {
  limit?: number;
  /** Treat every word of the query as a literal string (no FTS operators). */
  literal?: boolean;
  /** Markers around matched terms in snippets. */
  highlight?: { open: string; close: string };
  /** Called while the index catches up with the head: changed paths done, of total. */
  onProgress?: (done: number, total: number) => void;
}

export interface SearchHit {
  path: string;
  /** Relevance: bm25 negated, so higher is better. */
  score: number;
  snippet: string;
}

export interface SearchResult {
  results: SearchHit[];
  /** Documents this search added to or replaced in the vault's index while catching up with the head. */
  indexed: number;
}

/** Files larger than this are not grepped (reported as skipped). */
export const GREP_MAX_FILE_BYTES = 8 * 1024 * 1024;
/** A matching line longer than this is cut around its first match. */
export const MAX_LINE_CHARS = 1000;
/** Only this much of a longer line is matched: bounds what one pattern can cost per line. */
export const GREP_MAX_LINE_CHARS = 64 * 1024;
/** A grep stops after this long with what it found so far: a pattern that backtracks without end cannot hang it. */
export const GREP_TIME_BUDGET_MS = 10_000;
const GREP_MAX_TIME_BUDGET_MS = 3_600_000;
const GREP_DEFAULT_LIMIT = 100_000;
/** Files larger than this are not indexed for full-text search. */
const FTS_MAX_FILE_BYTES = 1024 * 1024;
const SEARCH_DEFAULT_LIMIT = 20;
export const SEARCH_MAX_LIMIT = 1000;
const MAX_QUERY_CHARS = 4096;
const MAX_PATTERN_CHARS = 4096;
const MAX_DEPTH = 4096;

const SNIPPET_OPEN = '\u0002';
const SNIPPET_CLOSE = '\u0003';

function checkDepth(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0 || value > MAX_DEPTH))
    throw new CorralError('INVALID_ARGUMENT', `${what} must be a whole number from 0 to ${MAX_DEPTH}, got ${String(value)}`, { [what]: value });
}

function checkLimit(value: number | undefined, what: string, max = Number.MAX_SAFE_INTEGER): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0 || value > max))
    throw new CorralError('INVALID_ARGUMENT', `${what} must be a whole number from 0 to ${max}, got ${String(value)}`, { [what]: value });
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder('utf-8');

/** The text of a blob when it is UTF-8 without NUL bytes, else undefined (a leading BOM is dropped). */
export function textOf(data: Uint8Array): string | undefined {
  if (isBinary(data)) return undefined;
  try {
    return utf8Strict.decode(data);
  } catch {
    return undefined;
  }
}

const TIMED_CALL = new Script('run()');

/**
 * Runs `fn` with a time limit; returns false when the limit stopped it. V8 interrupts even a
 * regular expression stuck backtracking, which no check between lines could. One call costs a
 * watchdog thread, so `fn` should be a whole job, not one step; what it did before being stopped
 * stays done (so it must keep its results consistent at every step).
 */
function runWithin(ms: number, fn: () => void): boolean {
  try {
    TIMED_CALL.runInContext(createContext({ run: fn }), { timeout: ms });
    return true;
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return false;
    throw e;
  }
}

/** A line cut to MAX_LINE_CHARS, keeping the match in view. */
function clipLine(text: string, matchAt: number): { text: string; truncated?: boolean } {
  if (text.length <= MAX_LINE_CHARS) return { text };
  const start = Math.max(0, Math.min(matchAt - 100, text.length - MAX_LINE_CHARS));
  return { text: (start > 0 ? '…' : '') + text.slice(start, start + MAX_LINE_CHARS) + (start + MAX_LINE_CHARS < text.length ? '…' : ''), truncated: true };
}

/** `"word"` for each whitespace-separated word: FTS5 strings, with inner quotes doubled. */
function literalQuery(query: string): string {
  return query
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .map((w) => `"${w.replaceAll('"', '""')}"`)
    .join(' ');
}

/**
 * True when every parenthesis outside double-quoted strings closes one opened before it, so a
 * query wrapped as `(query)` stays one group: `x) OR (y` cannot break out of the vault's scope.
 */
export function balancedParentheses(query: string): boolean {
  let depth = 0;
  for (let i = 0; i < query.length; i++) {
    const ch = query[i];
    if (ch === '"') {
      // An FTS5 string runs to the next lone quote ("" is a quote inside it); unterminated, to the end.
      for (i++; i < query.length; i++) if (query[i] === '"' && query[++i] !== '"') break;
      i--;
    } else if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

/** The token of the `scope` column that names a vault in the full-text index. */
function scopeOf(vaultId: number): string {
  return `v${vaultId}`;
}

/** Drops a vault's full-text index (called by vault delete inside its transaction: ids are reused). */
export function dropVaultIndex(db: Database, vaultId: number): void {
  db.run('DELETE FROM fts WHERE rowid IN (SELECT docid FROM fts_paths WHERE vault_id = ?)', vaultId);
  db.run('DELETE FROM fts_paths WHERE vault_id = ?', vaultId);
  db.run('DELETE FROM fts_state WHERE vault_id = ?', vaultId);
}

/** The head tree a vault's index reflects; a vault never indexed reflects the empty tree. */
function indexedTree(db: Database, vaultId: number): string {
  return db.get<{ tree: string }>('SELECT tree FROM fts_state WHERE vault_id = ?', vaultId)?.tree ?? EMPTY_TREE;
}

function invalidQuery(query: string, reason: string): CorralError {
  return new CorralError(
    'INVALID_ARGUMENT',
    `invalid search query (${reason}): put phrases and words with punctuation in double quotes, e.g. corral search '"foo-bar" baz', or pass --literal to search the words as given`,
    { query: query.slice(0, 200), reason },
  );
}

function indexable(kind: EntryKind, size: number): boolean {
  return kind === 'file' && size <= FTS_MAX_FILE_BYTES;
}

export class SearchService {
  private readonly store: CorralStore;

  constructor({ store }: ServiceDeps) {
    this.store = store;
  }

  private commitOf(v: Vault, ref: string | undefined): Commit {
    return ref === undefined ? this.store.getCommit(v.head) : this.store.resolveRef(v, ref);
  }

  /** The entry at `path` of a commit's tree (the root as a directory entry). */
  private startEntry(commit: Commit, path: string): Entry {
    if (path === '/') return { name: '', kind: 'dir', mode: 0o755, hash: commit.tree, size: commit.size, mtime: commit.createdAt, files: commit.files };
    return new TreeReader(this.store.objects, commit.tree).mustLstat(path);
  }

  /** Visits `start` (depth 0) and everything below it (depth 1, 2, …), like find(1). */
  private walk(start: Entry, path: string, maxDepth: number | undefined, visit: (path: string, e: Entry, depth: number) => void): void {
    visit(path, start, 0);
    if (start.kind !== 'dir' || maxDepth === 0) return;
    walkTree(this.store.objects, start.hash, path, (p, e, d) => visit(p, e, d + 1), maxDepth === undefined ? {} : { maxDepth: maxDepth - 1 });
  }

  // ---- find ---------------------------------------------------------------------------------------

  find(vault: string, path = '/', options: FindOptions = {}): FindMatch[] {
    const p = normalizePath(path);
    checkDepth(options.maxDepth, 'maxDepth');
    checkDepth(options.minDepth, 'minDepth');
    if (options.type !== undefined && !['f', 'd', 'l'].includes(options.type))
      throw new CorralError('INVALID_ARGUMENT', `type must be f (file), d (directory) or l (symlink), got '${String(options.type).slice(0, 20)}'`, { type: String(options.type).slice(0, 20) });
    const kind = options.type === undefined ? undefined : ({ f: 'file', d: 'dir', l: 'symlink' } as const)[options.type];
    const nameMatches = options.name === undefined ? undefined : compileGlob(options.name);
    const size = options.size === undefined ? undefined : parseSizeTest(options.size);
    const tags = (options.tags ?? []).map((t) => validateTag(t));
    const metas = (options.meta ?? []).map((m) => {
      if (typeof m !== 'string') throw new CorralError('INVALID_ARGUMENT', 'a metadata filter is KEY or KEY=VALUE');
      const eq = m.indexOf('=');
      return eq < 0 ? { key: validateMetaKey(m), value: undefined } : { key: validateMetaKey(m.slice(0, eq)), value: m.slice(eq + 1) };
    });
    const v = this.store.getVault(vault);
    const commit = this.commitOf(v, options.ref);
    const start = this.startEntry(commit, p);
    // Tags and metadata hang off head paths; every filter narrows to a set of paths.
    const allowed: Set<string>[] = [
      ...tags.map((t) => pathsWithTag(this.store.db, v.id, t)),
      ...metas.map((m) => pathsWithMeta(this.store.db, v.id, m.key, m.value)),
    ];
    const minDepth = options.minDepth ?? 0;
    const out: FindMatch[] = [];
    this.walk(start, p, options.maxDepth, (at, e, depth) => {
      if (depth < minDepth) return;
      if (kind !== undefined && e.kind !== kind) return;
      if (nameMatches && !nameMatches(baseName(at))) return;
      if (size && !sizeMatches(size, e.size)) return;
      if (allowed.some((set) => !set.has(at))) return;
      out.push({ path: at, kind: e.kind, size: e.size, mode: e.mode, mtime: e.mtime });
    });
    return out;
  }

  // ---- grep ---------------------------------------------------------------------------------------

  /** Compiles a user's regular expression; a bad one is INVALID_ARGUMENT with the syntax error. */
  static compilePattern(pattern: string, ignoreCase = false): RegExp {
    if (typeof pattern !== 'string' || pattern.length === 0) throw new CorralError('INVALID_ARGUMENT', 'the pattern must not be empty');
    if (pattern.length > MAX_PATTERN_CHARS) throw new CorralError('INVALID_ARGUMENT', `the pattern is longer than ${MAX_PATTERN_CHARS} characters`, { length: pattern.length });
    try {
      return new RegExp(pattern, ignoreCase ? 'i' : '');
    } catch (e) {
      const reason = (e as Error).message.replace(/^Invalid regular expression: /, '');
      throw new CorralError('INVALID_ARGUMENT', `invalid regular expression: ${reason} (patterns are JavaScript regular expressions; escape special characters such as ( [ { * + ? with \\)`, { pattern: pattern.slice(0, 200), reason });
    }
  }

  grep(vault: string, pattern: string, path = '/', options: GrepOptions = {}): GrepResult {
    const regex = SearchService.compilePattern(pattern, options.ignoreCase === true);
    const p = normalizePath(path);
    checkLimit(options.maxCount, 'maxCount');
    checkLimit(options.limit, 'limit');
    const budget = options.timeBudgetMs ?? GREP_TIME_BUDGET_MS;
    if (!Number.isSafeInteger(budget) || budget < 1 || budget > GREP_MAX_TIME_BUDGET_MS)
      throw new CorralError('INVALID_ARGUMENT', `the time budget must be a whole number of milliseconds from 1 to ${GREP_MAX_TIME_BUDGET_MS}, got ${String(budget)}`, { timeBudgetMs: budget });
    const limit = options.limit ?? GREP_DEFAULT_LIMIT;
    const perFile = options.filesOnly ? 1 : (options.maxCount ?? Number.POSITIVE_INFINITY);
    const v = this.store.getVault(vault);
    const commit = this.commitOf(v, options.ref);
    const start = this.startEntry(commit, p);
    const result: GrepResult = { matches: [], counts: [], files: 0, searched: 0, skipped: [], truncated: false, timedOut: false };
    // Stopped by the budget, the search keeps what it found; the counts are derived from the
    // matches afterwards, so they agree wherever it stopped.
    const finished = runWithin(budget, () => {
      const files: { path: string; entry: Entry }[] = [];
      if (start.kind === 'symlink') result.skipped.push({ path: p, reason: 'symlink', size: start.size });
      else this.walk(start, p, undefined, (at, e) => void (e.kind === 'file' && files.push({ path: at, entry: e })));
      for (const { path: at, entry } of files) {
        if (result.truncated) break;
        if (entry.size > GREP_MAX_FILE_BYTES) {
          result.skipped.push({ path: at, reason: 'too-large', size: entry.size });
          continue;
        }
        if (perFile === 0) continue;
        const data = this.store.objects.getBlob(entry.hash);
        if (isBinary(data)) {
          result.skipped.push({ path: at, reason: 'binary', size: entry.size });
          continue;
        }
        result.searched++;
        this.grepText(utf8Lenient.decode(data), at, regex, perFile, limit, result);
      }
    });
    if (!finished) {
      result.truncated = true;
      result.timedOut = true;
    }
    for (const m of result.matches) {
      const last = result.counts[result.counts.length - 1];
      if (last?.path === m.path) last.count++;
      else result.counts.push({ path: m.path, count: 1 });
    }
    result.files = result.counts.length;
    return result;
  }

  /** Adds the matching lines of one file's text to `result.matches`. */
  private grepText(text: string, path: string, regex: RegExp, perFile: number, limit: number, result: GrepResult): void {
    let count = 0;
    let lineNo = 0;
    let from = 0;
    while (from <= text.length && count < perFile) {
      let end = text.indexOf('\n', from);
      if (end < 0) {
        if (from === text.length) break; // No line after a final newline.
        end = text.length;
      }
      lineNo++;
      const line = text.charCodeAt(end - 1) === 13 && end > from ? text.slice(from, end - 1) : text.slice(from, end);
      from = end + 1;
      const m = regex.exec(line.length > GREP_MAX_LINE_CHARS ? line.slice(0, GREP_MAX_LINE_CHARS) : line);
      if (!m) continue;
      if (result.matches.length >= limit) {
        result.truncated = true;
        return;
      }
      count++;
      result.matches.push({ path, line: lineNo, ...clipLine(line, m.index) });
    }
  }

  // ---- full-text search ---------------------------------------------------------------------------

  /**
   * Brings the vault's index to its head: applies the diff between the tree the index reflects
   * and the head tree, in one write transaction. When the index is current, it only reads.
   * Returns the number of documents added or replaced.
   */
  private catchUp(vault: Vault, onProgress?: (done: number, total: number) => void): number {
    const db = this.store.db;
    if (indexedTree(db, vault.id) === this.store.getCommit(vault.head).tree) return 0;
    try {
      return this.applyHead(vault, onProgress);
    } catch (e) {
      throw toCorralError(e);
    }
  }

  /**
   * The changes between the tree a vault's index reflects and its head: a diff (O(changes)), or,
   * when gc has collected that tree (a history rewrite left it unreachable), the head compared
   * with the index's own paths and hashes (O(head), and only differing files are read).
   */
  private changesSince(vaultId: number, from: string, head: string): Change[] {
    const db = this.store.db;
    if (from === EMPTY_TREE || db.get('SELECT 1 AS x FROM trees WHERE hash = ?', from)) return diffTrees(this.store.objects, from, head);
    const stale = new Map(db.all<{ path: string; hash: string }>('SELECT path, hash FROM fts_paths WHERE vault_id = ?', vaultId).map((r) => [r.path, r.hash]));
    const changes: Change[] = [];
    walkTree(this.store.objects, head, '/', (path, e) => {
      if (e.kind === 'dir') return;
      const hash = stale.get(path);
      stale.delete(path);
      if (hash !== e.hash) changes.push({ path, change: hash === undefined ? 'added' : 'modified', kind: e.kind, newSize: e.size, newHash: e.hash, ...(hash === undefined ? {} : { oldHash: hash }) });
    });
    for (const [path, hash] of stale) changes.push({ path, change: 'deleted', kind: 'file', oldHash: hash });
    return changes;
  }

  private applyHead(vault: Vault, onProgress?: (done: number, total: number) => void): number {
    const db = this.store.db;
    return db.transaction(() => {
      // Another process may have moved the head, or caught the index up, while this one waited for the lock.
      const head = db.get<{ tree: string }>('SELECT c.tree AS tree FROM vaults v JOIN commits c ON c.id = v.head WHERE v.id = ?', vault.id);
      if (!head) throw new CorralError('VAULT_NOT_FOUND', `vault '${vault.name}' was deleted during the search: list the vaults with 'corral vault list'`, { vault: vault.name });
      const from = indexedTree(db, vault.id);
      if (from === head.tree) return 0;
      const scope = scopeOf(vault.id);
      const changes = this.changesSince(vault.id, from, head.tree);
      let indexed = 0;
      for (const [i, c] of changes.entries()) {
        const hash = c.newHash !== undefined && indexable(c.kind, c.newSize ?? 0) ? c.newHash : undefined;
        const old = db.get<{ hash: string; docid: number }>('SELECT hash, docid FROM fts_paths WHERE vault_id = ? AND path = ?', vault.id, c.path);
        // Same content (a change of mode only): the document stays.
        if (old?.hash !== hash) {
          if (old) {
            db.run('DELETE FROM fts WHERE rowid = ?', old.docid);
            db.run('DELETE FROM fts_paths WHERE vault_id = ? AND path = ?', vault.id, c.path);
          }
          // A file that is not UTF-8 text gets no document.
          const body = hash === undefined ? undefined : textOf(this.store.objects.getBlob(hash));
          if (hash !== undefined && body !== undefined) {
            const docid = db.run('INSERT INTO fts(scope, path, body) VALUES (?, ?, ?)', scope, c.path, body).lastInsertRowid;
            db.run('INSERT INTO fts_paths(vault_id, path, hash, docid) VALUES (?, ?, ?, ?)', vault.id, c.path, hash, docid);
            indexed++;
          }
        }
        if (onProgress && (i % 100 === 0 || i === changes.length - 1)) onProgress(i + 1, changes.length);
      }
      db.run('INSERT INTO fts_state(vault_id, tree) VALUES (?, ?) ON CONFLICT(vault_id) DO UPDATE SET tree = excluded.tree', vault.id, head.tree);
      return indexed;
    });
  }

  /** Full-text search over the head's text files, best first. */
  search(vault: string, query: string, options: SearchOptions = {}): SearchResult {
    if (typeof query !== 'string' || query.trim().length === 0) throw new CorralError('INVALID_ARGUMENT', 'the search query must not be empty');
    if (query.length > MAX_QUERY_CHARS) throw new CorralError('INVALID_ARGUMENT', `the search query is longer than ${MAX_QUERY_CHARS} characters`, { length: query.length });
    if (query.includes('\0')) throw new CorralError('INVALID_ARGUMENT', 'the search query must not contain NUL');
    checkLimit(options.limit, 'limit', SEARCH_MAX_LIMIT);
    const limit = options.limit ?? SEARCH_DEFAULT_LIMIT;
    const match = options.literal ? literalQuery(query) : query;
    if (!balancedParentheses(match)) throw invalidQuery(query, 'unbalanced parentheses');
    const v = this.store.getVault(vault);
    const indexed = this.catchUp(v, options.onProgress);
    if (limit === 0) return { results: [], indexed };

    let rows: { path: string; score: number; snippet: string }[];
    try {
      // The user's query is only ever a bound parameter, confined to the body column of the
      // vault's documents (a column filter inside it narrows further, never wider). Ranked by
      // bm25 over the body alone: the scope and path columns weigh nothing.
      rows = this.store.db.all(
        `SELECT path, rank AS score, snippet(fts, 2, '${SNIPPET_OPEN}', '${SNIPPET_CLOSE}', '…', 16) AS snippet
           FROM fts WHERE fts MATCH ? AND rank MATCH 'bm25(0.0, 0.0, 1.0)' ORDER BY rank LIMIT ?`,
        `scope : ${scopeOf(v.id)} AND body : (${match})`,
        limit,
      );
    } catch (e) {
      const err = e as { errcode?: number; message?: string };
      if (err.errcode === 1) throw invalidQuery(query, String(err.message ?? '').replace(/^fts5: /, ''));
      throw e;
    }
    const open = options.highlight?.open ?? '**';
    const close = options.highlight?.close ?? '**';
    const results = rows.map((r) => ({
      path: r.path,
      score: Number((-r.score).toPrecision(6)),
      snippet: r.snippet.replace(/\s+/g, ' ').trim().replaceAll(SNIPPET_OPEN, open).replaceAll(SNIPPET_CLOSE, close),
    }));
    return { results, indexed };
  }
}
