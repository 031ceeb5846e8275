// The append-only, hash-chained audit log. Each record's hash covers its fields and the hash of
// the record before it; the chain's head is also kept in `settings`, so a deleted tail shows.
import { sha256 } from './object-store.ts';
import type { Database } from './database.ts';
import { pathAndBelow } from './path-attributes.ts';

export interface AuditInput {
  actor: string;
  vault: string | null;
  op: string;
  target: string | null;
  details: Record<string, unknown>;
  /** 'ok', or 'error:CODE'. */
  result: string;
}

export interface AuditRecord extends AuditInput {
  seq: number;
  ts: number;
  prevHash: string;
  hash: string;
}

export interface AuditFilter {
  op?: string;
  vault?: string;
  path?: string;
  since?: number;
  limit?: number;
}

export interface AuditProblem {
  seq: number;
  problem: 'changed' | 'deleted' | 'inserted' | 'tail-deleted';
  message: string;
}

export interface AuditVerification {
  ok: boolean;
  records: number;
  headSeq: number;
  problems: AuditProblem[];
}

const GENESIS = '0'.repeat(64);
const HEAD_KEY = 'audit_head';

interface Row {
  seq: number;
  ts: number;
  actor: string;
  vault: string | null;
  op: string;
  target: string | null;
  details: string;
  result: string;
  prev_hash: string;
  hash: string;
}

function recordHash(prevHash: string, r: { seq: number; ts: number; actor: string; vault: string | null; op: string; target: string | null; details: string; result: string }): string {
  return sha256(prevHash + '\n' + JSON.stringify([r.seq, r.ts, r.actor, r.vault, r.op, r.target, r.details, r.result]));
}

function fromRow(r: Row): AuditRecord {
  return {
    seq: r.seq,
    ts: r.ts,
    actor: r.actor,
    vault: r.vault,
    op: r.op,
    target: r.target,
    details: JSON.parse(r.details) as Record<string, unknown>,
    result: r.result,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export class AuditLog {
  private readonly db: Database;
  private readonly now: () => number;

  constructor(db: Database, now: () => number = Date.now) {
    this.db = db;
    this.now = now;
  }

  /** Appends one record; call inside the transaction whose change it records. */
  append(input: AuditInput): AuditRecord {
    return this.db.inTransaction ? this.appendNow(input) : this.db.transaction(() => this.appendNow(input));
  }

  private appendNow(input: AuditInput): AuditRecord {
    const last = this.db.get<{ seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    const seq = (last?.seq ?? 0) + 1;
    const prevHash = last?.hash ?? GENESIS;
    const ts = this.now();
    const details = JSON.stringify(input.details);
    const hash = recordHash(prevHash, { ...input, seq, ts, details });
    this.db.run(
      'INSERT INTO audit(seq, ts, actor, vault, op, target, details, result, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      seq, ts, input.actor, input.vault, input.op, input.target, details, input.result, prevHash, hash,
    );
    this.db.run('INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', HEAD_KEY, `${seq}:${hash}`);
    return { ...input, seq, ts, prevHash, hash };
  }

  list(filter: AuditFilter = {}): AuditRecord[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.op) {
      where.push('op = ?');
      params.push(filter.op);
    }
    if (filter.vault) {
      where.push('vault = ?');
      params.push(filter.vault);
    }
    if (filter.path) {
      const under = pathAndBelow(filter.path, 'target');
      where.push(`(${under.where} OR details LIKE ? ESCAPE '\\')`);
      params.push(...under.params, `%"${filter.path.replace(/[\\%_]/g, (c) => '\\' + c)}"%`);
    }
    if (filter.since !== undefined) {
      where.push('ts >= ?');
      params.push(filter.since);
    }
    const limit = Math.max(0, Math.min(filter.limit ?? 100, 100_000));
    const sql = `SELECT * FROM (SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT ${limit}) ORDER BY seq`;
    return this.db.raw.prepare(sql).all(...params).map((r) => fromRow(r as unknown as Row));
  }

  /** Walks the whole chain and reports every place where it does not hold. */
  verify(): AuditVerification {
    const problems: AuditProblem[] = [];
    let prevHash = GENESIS;
    let prevSeq = 0;
    let records = 0;
    for (const raw of this.db.raw.prepare('SELECT * FROM audit ORDER BY seq').iterate()) {
      const r = raw as unknown as Row;
      records++;
      if (recordHash(r.prev_hash, r) !== r.hash) {
        problems.push({ seq: r.seq, problem: 'changed', message: `record ${r.seq} was changed after it was written (its hash does not match its content)` });
      } else if (r.prev_hash !== prevHash) {
        problems.push(
          r.seq === prevSeq + 1
            ? { seq: r.seq, problem: 'inserted', message: `record ${r.seq} does not follow record ${prevSeq}: a record was inserted or replaced before it` }
            : { seq: r.seq, problem: 'deleted', message: `records ${prevSeq + 1}..${r.seq - 1} are missing before record ${r.seq}` },
        );
      } else if (r.seq !== prevSeq + 1) {
        problems.push({ seq: r.seq, problem: 'inserted', message: `record ${r.seq} has an out-of-order sequence number after ${prevSeq}` });
      }
      prevHash = r.hash;
      prevSeq = r.seq;
    }
    const head = this.db.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', HEAD_KEY)?.value;
    if (head) {
      const [seqText, hash] = head.split(':');
      const seq = Number(seqText);
      if (seq > prevSeq) problems.push({ seq, problem: 'tail-deleted', message: `records ${prevSeq + 1}..${seq} at the end of the log are missing` });
      else if (seq === prevSeq && hash !== prevHash) problems.push({ seq, problem: 'changed', message: `the last record ${seq} does not match the recorded chain head` });
      else if (seq < prevSeq) problems.push({ seq: seq + 1, problem: 'inserted', message: `records ${seq + 1}..${prevSeq} were appended outside Corral` });
    } else if (records > 0) {
      problems.push({ seq: prevSeq, problem: 'changed', message: 'the chain head record is missing' });
    }
    return { ok: problems.length === 0, records, headSeq: prevSeq, problems };
  }
}
