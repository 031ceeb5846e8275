// Events of sandboxes, execs and approvals, published by the services and read by the API's event
// streams, the metrics and (later) the fleet. In memory, per Corral instance: a bounded ring of the
// latest events lets a client that reconnects with its last seq get what it missed.

export type CorralEventType =
  | 'created'
  | 'ready'
  | 'paused'
  | 'resumed'
  | 'checkpointed'
  | 'restored'
  | 'expired'
  | 'destroyed'
  | 'exec.started'
  | 'exec.exited'
  | 'approval.requested'
  | 'approval.answered';

export interface CorralEvent {
  /** Grows by one per event in this process (a client resumes after the last one it saw). */
  seq: number;
  type: CorralEventType;
  /** ISO time. */
  at: string;
  /** The sbx_ id the event concerns, or null (an approval of a vault outside any sandbox). */
  sandbox: string | null;
  /** The owning tenant; null: the machine's owner. */
  tenant: string | null;
  data: Record<string, unknown>;
}

export type EventListener = (e: CorralEvent) => void;

const RING = 1024;

export class EventBus {
  private seq = 0;
  private readonly ring: CorralEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  publish(type: CorralEventType, fields: { sandbox: string | null; tenant: string | null; data?: Record<string, unknown> }): CorralEvent {
    const event: CorralEvent = { seq: ++this.seq, type, at: new Date(this.now()).toISOString(), sandbox: fields.sandbox, tenant: fields.tenant, data: fields.data ?? {} };
    this.ring.push(event);
    if (this.ring.length > RING) this.ring.shift();
    // A listener that throws must not stop the others or the publisher.
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        /* the listener's own problem */
      }
    }
    return event;
  }

  /** Calls `listener` for every later event; returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Kept events after `seq` (oldest first); `complete` is false when some were already dropped from the ring. */
  since(seq: number): { events: CorralEvent[]; complete: boolean } {
    const events = this.ring.filter((e) => e.seq > seq);
    const oldest = this.ring[0]?.seq ?? this.seq + 1;
    return { events, complete: seq >= oldest - 1 || seq >= this.seq };
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** How many listeners are subscribed (streams release theirs when their client goes). */
  get subscribers(): number {
    return this.listeners.size;
  }
}
