// Tags and metadata on the paths of a vault's head: add, remove, list, export and import. Every
// change goes through store.write, so each is one transaction with one audit record.
import { CorralError } from '../protocol/errors.ts';
import { normalizePath, validateMetaKey, validateTag } from '../protocol/paths.ts';
import type { Caller, CorralStore, Vault } from '../store/corral-store.ts';
import type { Database } from '../store/database.ts';
import { lookup } from '../store/tree-diff.ts';
import type { ServiceDeps } from './corral.ts';

/** Bytes of UTF-8 a metadata value may hold. */
export const MAX_META_VALUE_BYTES = 64 * 1024;
/** Tags one call may add or remove. */
export const MAX_TAGS_PER_CALL = 256;
export const EXPORT_VERSION = 1;

export interface TagCount {
  tag: string;
  count: number;
}

export interface PathAttributes {
  tags: string[];
  meta: Record<string, string>;
}

export interface AttributesDocument {
  version: number;
  vault: string;
  paths: Record<string, PathAttributes>;
}

export interface ImportSummary {
  vault: string;
  paths: number;
  tagsAdded: number;
  metaSet: number;
  /** Paths of the document left out because they are not in the head (with skipMissing). */
  skipped: string[];
}

const utf8 = new TextEncoder();

/** An object without a prototype, so keys such as `__proto__` stay plain data. */
function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

export function validateMetaValue(value: unknown, key = 'value'): string {
  if (typeof value !== 'string') throw new CorralError('INVALID_ARGUMENT', `metadata value of '${key}' must be a string, got ${value === null ? 'null' : typeof value}`, { key });
  if (value.includes('\0')) throw new CorralError('INVALID_ARGUMENT', `metadata value of '${key}' contains a NUL byte`, { key });
  const bytes = utf8.encode(value).length;
  if (bytes > MAX_META_VALUE_BYTES)
    throw new CorralError('PAYLOAD_TOO_LARGE', `metadata value of '${key}' is ${bytes} bytes, over the limit of ${MAX_META_VALUE_BYTES}: store large content as a file instead`, { key, bytes, limit: MAX_META_VALUE_BYTES });
  return value;
}

/** Validated, de-duplicated tags in the order given. */
function validateTags(tags: readonly unknown[]): string[] {
  if (!Array.isArray(tags) || tags.length === 0) throw new CorralError('INVALID_ARGUMENT', 'give at least one tag');
  if (tags.length > MAX_TAGS_PER_CALL) throw new CorralError('INVALID_ARGUMENT', `at most ${MAX_TAGS_PER_CALL} tags at once, got ${tags.length}`, { count: tags.length });
  return [...new Set(tags.map((t) => validateTag(t)))];
}

// ---- queries shared with the search service ------------------------------------------------

export function tagsOfPath(db: Database, vaultId: number, path: string): string[] {
  return db.all<{ tag: string }>('SELECT tag FROM tags WHERE vault_id = ? AND path = ? ORDER BY tag', vaultId, path).map((r) => r.tag);
}

function metaOfPath(db: Database, vaultId: number, path: string): Record<string, string> {
  const out = dict<string>();
  for (const r of db.all<{ key: string; value: string }>('SELECT key, value FROM path_meta WHERE vault_id = ? AND path = ? ORDER BY key', vaultId, path)) out[r.key] = r.value;
  return out;
}

export function pathsWithTag(db: Database, vaultId: number, tag: string): Set<string> {
  return new Set(db.all<{ path: string }>('SELECT path FROM tags WHERE vault_id = ? AND tag = ?', vaultId, tag).map((r) => r.path));
}

/** Paths with metadata `key`, and, when `value` is given, with exactly that value. */
export function pathsWithMeta(db: Database, vaultId: number, key: string, value?: string): Set<string> {
  const rows =
    value === undefined
      ? db.all<{ path: string }>('SELECT path FROM path_meta WHERE vault_id = ? AND key = ?', vaultId, key)
      : db.all<{ path: string }>('SELECT path FROM path_meta WHERE vault_id = ? AND key = ? AND value = ?', vaultId, key, value);
  return new Set(rows.map((r) => r.path));
}

// ---- the import document -------------------------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a whole export document before anything is applied; returns it with normalised paths. */
function parseAttributesDocument(doc: unknown): Map<string, PathAttributes> {
  const bad = (message: string, details: Record<string, unknown> = {}): CorralError =>
    new CorralError('INVALID_ARGUMENT', `invalid metadata document: ${message} (nothing was changed)`, details);
  if (!isPlainObject(doc)) throw bad('expected a JSON object like {"version":1,"paths":{...}}');
  if (doc.version !== EXPORT_VERSION) throw bad(`unsupported version ${JSON.stringify(doc.version)}: this Corral reads version ${EXPORT_VERSION}`);
  if (!isPlainObject(doc.paths)) throw bad('"paths" must be an object mapping paths to {"tags":[...],"meta":{...}}');
  const out = new Map<string, PathAttributes>();
  for (const [rawPath, entry] of Object.entries(doc.paths)) {
    let path: string;
    try {
      path = normalizePath(rawPath);
    } catch (e) {
      throw bad(`path ${JSON.stringify(rawPath.slice(0, 200))}: ${(e as Error).message}`, { path: rawPath.slice(0, 200) });
    }
    if (!isPlainObject(entry)) throw bad(`the entry of ${path} must be an object with "tags" and/or "meta"`, { path });
    for (const field of Object.keys(entry))
      if (field !== 'tags' && field !== 'meta') throw bad(`unknown field ${JSON.stringify(field.slice(0, 80))} in the entry of ${path}: only "tags" and "meta"`, { path });
    const merged = out.get(path) ?? { tags: [], meta: dict<string>() };
    if (entry.tags !== undefined) {
      if (!Array.isArray(entry.tags)) throw bad(`"tags" of ${path} must be an array of strings`, { path });
      if (entry.tags.length > MAX_TAGS_PER_CALL) throw bad(`${path} has more than ${MAX_TAGS_PER_CALL} tags`, { path });
      for (const t of entry.tags) {
        try {
          validateTag(t);
        } catch (e) {
          throw bad(`${path}: ${(e as Error).message}`, { path });
        }
        if (!merged.tags.includes(t as string)) merged.tags.push(t as string);
      }
    }
    if (entry.meta !== undefined) {
      if (!isPlainObject(entry.meta)) throw bad(`"meta" of ${path} must be an object of string values`, { path });
      for (const [key, value] of Object.entries(entry.meta)) {
        try {
          validateMetaKey(key);
          validateMetaValue(value, key);
        } catch (e) {
          throw bad(`${path}: ${(e as Error).message}`, { path, key: key.slice(0, 128) });
        }
        merged.meta[key] = value as string;
      }
    }
    out.set(path, merged);
  }
  return out;
}

export class TagService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  private get db(): Database {
    return this.store.db;
  }

  /** True when `path` exists in the vault's head (the root always does). */
  private existsAtHead(v: Vault, path: string): boolean {
    return path === '/' || lookup(this.store.objects, this.store.getCommit(v.head).tree, path) !== undefined;
  }

  private mustExist(v: Vault, path: string): void {
    if (!this.existsAtHead(v, path))
      throw new CorralError('PATH_NOT_FOUND', `no such file or directory in the head of '${v.name}': ${path} (tags and metadata go on existing paths)`, { path, vault: v.name });
  }

  // ---- tags ---------------------------------------------------------------------------------

  /** Adds tags to an existing path; tags it already has are kept. */
  add(vault: string, path: string, tags: readonly string[]): { path: string; added: string[]; tags: string[] } {
    const p = normalizePath(path);
    const wanted = validateTags(tags);
    return this.store.write(this.caller, vault, { op: 'tag.add', target: p, details: { tags: wanted } }, () => {
      const v = this.store.getVault(vault);
      this.mustExist(v, p);
      const added = wanted.filter((t) => this.db.run('INSERT OR IGNORE INTO tags(vault_id, path, tag) VALUES (?, ?, ?)', v.id, p, t).changes === 1);
      return { path: p, added, tags: tagsOfPath(this.db, v.id, p) };
    });
  }

  /** Removes tags from a path; fails with TAG_NOT_FOUND, changing nothing, when one is not there. */
  remove(vault: string, path: string, tags: readonly string[]): { path: string; removed: string[]; tags: string[] } {
    const p = normalizePath(path);
    const wanted = validateTags(tags);
    return this.store.write(this.caller, vault, { op: 'tag.remove', target: p, details: { tags: wanted } }, () => {
      const v = this.store.getVault(vault);
      const have = new Set(tagsOfPath(this.db, v.id, p));
      const missing = wanted.filter((t) => !have.has(t));
      if (missing.length > 0)
        throw new CorralError('TAG_NOT_FOUND', `${p} does not have the tag${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: see 'corral tag ${p}' (nothing was changed)`, { path: p, missing });
      for (const t of wanted) this.db.run('DELETE FROM tags WHERE vault_id = ? AND path = ? AND tag = ?', v.id, p, t);
      return { path: p, removed: wanted, tags: tagsOfPath(this.db, v.id, p) };
    });
  }

  /** The tags of one path. */
  list(vault: string, path: string): { path: string; tags: string[] } {
    const p = normalizePath(path);
    const v = this.store.getVault(vault);
    const tags = tagsOfPath(this.db, v.id, p);
    if (tags.length === 0) this.mustExist(v, p);
    return { path: p, tags };
  }

  /** Every tag of the vault with the number of paths carrying it. */
  all(vault: string): TagCount[] {
    const v = this.store.getVault(vault);
    return this.db.all<TagCount>('SELECT tag, count(*) AS count FROM tags WHERE vault_id = ? GROUP BY tag ORDER BY tag', v.id).map((r) => ({ tag: r.tag, count: r.count }));
  }

  /** Paths carrying `tag`, sorted. */
  find(vault: string, tag: string): { tag: string; paths: string[] } {
    validateTag(tag);
    const v = this.store.getVault(vault);
    return { tag, paths: [...pathsWithTag(this.db, v.id, tag)].sort() };
  }

  // ---- metadata -----------------------------------------------------------------------------

  /** All metadata of a path. */
  metaAll(vault: string, path: string): { path: string; meta: Record<string, string> } {
    const p = normalizePath(path);
    const v = this.store.getVault(vault);
    const meta = metaOfPath(this.db, v.id, p);
    if (Object.keys(meta).length === 0) this.mustExist(v, p);
    return { path: p, meta };
  }

  /** One metadata value; META_NOT_FOUND when the path has no such key. */
  metaGet(vault: string, path: string, key: string): { path: string; key: string; value: string } {
    const p = normalizePath(path);
    validateMetaKey(key);
    const v = this.store.getVault(vault);
    const row = this.db.get<{ value: string }>('SELECT value FROM path_meta WHERE vault_id = ? AND path = ? AND key = ?', v.id, p, key);
    if (!row) {
      this.mustExist(v, p);
      throw new CorralError('META_NOT_FOUND', `${p} has no metadata '${key}': see 'corral meta get ${p}'`, { path: p, key });
    }
    return { path: p, key, value: row.value };
  }

  metaSet(vault: string, path: string, key: string, value: string): { path: string; key: string; value: string; previous: string | null } {
    const p = normalizePath(path);
    validateMetaKey(key);
    validateMetaValue(value, key);
    return this.store.write(this.caller, vault, { op: 'meta.set', target: p, details: { key, bytes: utf8.encode(value).length } }, () => {
      const v = this.store.getVault(vault);
      this.mustExist(v, p);
      const previous = this.db.get<{ value: string }>('SELECT value FROM path_meta WHERE vault_id = ? AND path = ? AND key = ?', v.id, p, key)?.value ?? null;
      this.db.run('INSERT INTO path_meta(vault_id, path, key, value) VALUES (?, ?, ?, ?) ON CONFLICT(vault_id, path, key) DO UPDATE SET value = excluded.value', v.id, p, key, value);
      return { path: p, key, value, previous };
    });
  }

  metaDelete(vault: string, path: string, key: string): { path: string; key: string; value: string } {
    const p = normalizePath(path);
    validateMetaKey(key);
    return this.store.write(this.caller, vault, { op: 'meta.delete', target: p, details: { key } }, () => {
      const v = this.store.getVault(vault);
      const row = this.db.get<{ value: string }>('SELECT value FROM path_meta WHERE vault_id = ? AND path = ? AND key = ?', v.id, p, key);
      if (!row) throw new CorralError('META_NOT_FOUND', `${p} has no metadata '${key}': see 'corral meta get ${p}' (nothing was changed)`, { path: p, key });
      this.db.run('DELETE FROM path_meta WHERE vault_id = ? AND path = ? AND key = ?', v.id, p, key);
      return { path: p, key, value: row.value };
    });
  }

  // ---- export and import --------------------------------------------------------------------

  /** Every tag and metadata entry of the vault, by path (sorted). */
  export(vault: string): AttributesDocument {
    const v = this.store.getVault(vault);
    const paths = dict<PathAttributes>();
    const entry = (p: string): PathAttributes => (paths[p] ??= { tags: [], meta: dict<string>() });
    // One statement over both tables reads one snapshot, so a concurrent writer cannot split the document.
    const rows = this.db.all<{ path: string; tag: string | null; key: string | null; value: string | null }>(
      'SELECT path, tag, NULL AS key, NULL AS value FROM tags WHERE vault_id = ? UNION ALL SELECT path, NULL, key, value FROM path_meta WHERE vault_id = ? ORDER BY 1, 2, 3',
      v.id,
      v.id,
    );
    for (const r of rows) {
      if (r.tag !== null) entry(r.path).tags.push(r.tag);
      else if (r.key !== null) entry(r.path).meta[r.key] = r.value ?? '';
    }
    const sorted = dict<PathAttributes>();
    for (const p of Object.keys(paths).sort()) sorted[p] = paths[p]!;
    return { version: EXPORT_VERSION, vault: v.name, paths: sorted };
  }

  /**
   * Merges an export document into the vault: tags are added, metadata values set. The whole
   * document is validated first (shape, names, sizes, and that every path exists in the head,
   * unless `skipMissing` leaves such paths out), then applied in one transaction; a bad document
   * changes nothing.
   */
  import(vault: string, doc: unknown, options: { skipMissing?: boolean } = {}): ImportSummary {
    const parsed = parseAttributesDocument(doc);
    return this.store.write(this.caller, vault, { op: 'meta.import', target: null, details: { paths: parsed.size, skipMissing: options.skipMissing === true } }, () => {
      const v = this.store.getVault(vault);
      const missing = [...parsed.keys()].filter((p) => !this.existsAtHead(v, p));
      if (missing.length > 0 && !options.skipMissing)
        throw new CorralError(
          'PATH_NOT_FOUND',
          `${missing.length} path${missing.length > 1 ? 's' : ''} of the document ${missing.length > 1 ? 'do' : 'does'} not exist in the head of '${v.name}': ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''} (nothing was changed; pass --skip-missing to import the rest)`,
          { paths: missing.slice(0, 100), count: missing.length },
        );
      for (const p of missing) parsed.delete(p);
      let tagsAdded = 0;
      let metaSet = 0;
      for (const [p, attrs] of parsed) {
        for (const t of attrs.tags) tagsAdded += this.db.run('INSERT OR IGNORE INTO tags(vault_id, path, tag) VALUES (?, ?, ?)', v.id, p, t).changes;
        for (const [key, value] of Object.entries(attrs.meta)) {
          this.db.run('INSERT INTO path_meta(vault_id, path, key, value) VALUES (?, ?, ?, ?) ON CONFLICT(vault_id, path, key) DO UPDATE SET value = excluded.value', v.id, p, key, value);
          metaSet++;
        }
      }
      return { vault: v.name, paths: parsed.size, tagsAdded, metaSet, skipped: missing };
    }, (s) => ({ tagsAdded: s.tagsAdded, metaSet: s.metaSet, skipped: s.skipped.length }));
  }
}
