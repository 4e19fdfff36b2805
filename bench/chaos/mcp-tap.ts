// Counts tools/call requests per (tool, arguments) on a test MCP server, so executions can be told apart per task.
// The server's own counters are per tool only; every chaos task sends arguments no other task sends.

import type { IncomingMessage } from 'node:http';
import { startTestMcpServer, type TestMcpServer } from '../../test/support/mcp-test-server.ts';

export interface TappedMcpServer {
  server: TestMcpServer;
  /** tools/call requests that reached a serving server, by callKey(tool, arguments). */
  calls: Map<string, number>;
}

/** Stable JSON (sorted keys), so the same arguments always give the same key. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function callKey(tool: string, args: Record<string, unknown>): string {
  return `${tool} ${canonical(args)}`;
}

/**
 * The server's gate sees every request before the server reads it. A 'data' listener added here receives the same
 * chunks the server's own reader pulls (a 'readable' reader takes over the flow and 'data' still fires on each read),
 * so the body is observed without being consumed. Requests the server rejects (mode 'down') are not counted.
 */
export async function startTappedMcpServer(name: string): Promise<TappedMcpServer> {
  const calls = new Map<string, number>();
  let server: TestMcpServer | undefined;
  const gate = (req: IncomingMessage) => {
    if (req.method !== 'POST' || !server || server.mode !== 'up' || server.failNextCalls > 0) return undefined;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return;
      }
      for (const m of Array.isArray(body) ? body : [body]) {
        const msg = m as { method?: unknown; params?: { name?: unknown; arguments?: unknown } };
        if (msg?.method !== 'tools/call' || typeof msg.params?.name !== 'string') continue;
        const key = callKey(msg.params.name, (msg.params.arguments ?? {}) as Record<string, unknown>);
        calls.set(key, (calls.get(key) ?? 0) + 1);
      }
    });
    return undefined;
  };
  server = await startTestMcpServer({ name, gate });
  return { server, calls };
}
