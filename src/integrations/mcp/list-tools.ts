import { raceAbort, startDeadline } from './connect.ts';
import type { Deadline, McpConnection, McpEndpoint } from './connect.ts';
import { McpProtocolError, toMcpClientError } from './errors.ts';
import { runOnce, type McpSessionPool } from './session-pool.ts';

export interface DiscoveredTool {
  name: string;
  description?: string;
  inputSchema: Record<string, unknown>;
}

// A server that keeps handing out cursors is broken; stop rather than loop until the deadline.
const MAX_PAGES = 100;

export async function listTools(
  endpoint: McpEndpoint,
  opts: { timeoutMs: number; signal?: AbortSignal; sessions?: McpSessionPool },
): Promise<DiscoveredTool[]> {
  const deadline = startDeadline(opts.timeoutMs, opts.signal);
  const ctx = { signal: deadline.signal, timeoutMs: opts.timeoutMs };
  const run = opts.sessions ? opts.sessions.run.bind(opts.sessions) : runOnce;
  try {
    return await run(endpoint, { signal: deadline.signal, timeoutMs: deadline.remainingMs() }, (conn) => listAll(conn, deadline));
  } catch (e) {
    throw toMcpClientError(e, ctx);
  } finally {
    deadline.dispose();
  }
}

async function listAll(conn: McpConnection, deadline: Deadline): Promise<DiscoveredTool[]> {
  const tools: DiscoveredTool[] = [];
  const seenCursors = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const result = await raceAbort(
      Promise.race([
        conn.client.listTools(cursor === undefined ? {} : { cursor }, {
          signal: deadline.signal,
          timeout: deadline.remainingMs(),
        }),
        conn.lost,
      ]),
      deadline.signal,
    );
    for (const t of result.tools) {
      tools.push({
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        inputSchema: t.inputSchema as Record<string, unknown>,
      });
    }
    cursor = result.nextCursor;
    if (cursor === undefined) return tools;
    if (seenCursors.has(cursor)) throw new McpProtocolError('tools/list repeated a pagination cursor', true);
    seenCursors.add(cursor);
  }
  throw new McpProtocolError(`tools/list did not finish within ${MAX_PAGES} pages`, true);
}
