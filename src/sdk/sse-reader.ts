// A Server-Sent Events parser over a fetch body (WHATWG rules: `event:`, `data:` lines joined with
// newlines, `id:`, comments, a blank line ends an event; LF or CRLF line ends). Pull-based: nothing is
// read ahead of the consumer, and returning early cancels the body (closing the connection).

export interface SseEvent {
  /** The event name (`message` when the event named none). */
  event: string;
  data: string;
  /** The last event id seen so far in the stream (it carries over events without an id), or null. */
  id: string | null;
}

export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let finished = false;
  // The pieces of a line not ended yet: joined once, when its end arrives, so a huge line (an exit
  // frame carrying megabytes of output) spread over many chunks costs one copy, not one per chunk.
  let pending: string[] = [];
  let data: string[] = [];
  let event = '';
  let lastId: string | null = null;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      const text = decoder.decode(value, { stream: true });
      let start = 0;
      let nl: number;
      while ((nl = text.indexOf('\n', start)) >= 0) {
        let line = text.slice(start, nl);
        start = nl + 1;
        if (pending.length > 0) {
          pending.push(line);
          line = pending.join('');
          pending = [];
        }
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length > 0) {
            const out: SseEvent = { event: event || 'message', data: data.join('\n'), id: lastId };
            data = [];
            event = '';
            yield out;
          } else event = '';
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let fieldValue = colon < 0 ? '' : line.slice(colon + 1);
        if (fieldValue.startsWith(' ')) fieldValue = fieldValue.slice(1);
        if (field === 'data') data.push(fieldValue);
        else if (field === 'event') event = fieldValue;
        else if (field === 'id' && !fieldValue.includes('\0')) lastId = fieldValue;
      }
      if (start < text.length) pending.push(text.slice(start));
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
