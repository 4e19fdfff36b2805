import { startTestMcpServer } from '../test/support/mcp-test-server.ts';

// The MCP server the tests use (tools echo, slow, large, fail, whoami), on a fixed port for a first try by hand.
const port = Number(process.argv[2] ?? 3001);
const server = await startTestMcpServer({ name: 'demo', port });
process.stdout.write(`demo MCP server: ${server.url} (legacy SSE: ${server.sseUrl}); Ctrl-C stops it\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
