export interface SseEvent {
  id?: string;
  event: string;
  data: any;
}

/**
 * Reads an SSE response until `until` says stop, the server closes the stream, or the timeout passes.
 * A tiny parser of the wire format, so tests see exactly what a browser's EventSource would.
 */
export async function readEvents(
  url: string,
  opts: { token: string; lastEventId?: string; until?: (e: SseEvent, all: SseEvent[]) => boolean; timeoutMs?: number; onEvent?: (e: SseEvent) => void },
): Promise<{ status: number; events: SseEvent[]; comments: number; closedByServer: boolean }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.timeoutMs ?? 30_000);
  const events: SseEvent[] = [];
  let comments = 0;
  let closedByServer = false;
  try {
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${opts.token}`, Accept: 'text/event-stream', ...(opts.lastEventId ? { 'Last-Event-ID': opts.lastEventId } : {}) },
      signal: abort.signal,
    });
    if (!res.ok || !res.body) return { status: res.status, events, comments, closedByServer: true };
    const decoder = new TextDecoder();
    let buffer = '';
    let current: Partial<SseEvent> & { dataLines: string[] } = { dataLines: [] };
    const reader = res.body.getReader();
    outer: for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        closedByServer = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (current.dataLines.length > 0) {
            const e: SseEvent = { event: current.event ?? 'message', data: JSON.parse(current.dataLines.join('\n')), ...(current.id !== undefined ? { id: current.id } : {}) };
            events.push(e);
            opts.onEvent?.(e);
            if (opts.until?.(e, events)) {
              await reader.cancel();
              break outer;
            }
          }
          current = { dataLines: [] };
        } else if (line.startsWith(':')) comments++;
        else {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'data') current.dataLines.push(value);
          else if (field === 'event') current.event = value;
          else if (field === 'id') current.id = value;
        }
      }
    }
    return { status: res.status, events, comments, closedByServer };
  } catch (err) {
    if (abort.signal.aborted) return { status: 200, events, comments, closedByServer: false };
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
