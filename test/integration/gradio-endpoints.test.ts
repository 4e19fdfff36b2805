import assert from 'node:assert/strict';
import { legacySseUrlOf } from '../../src/integrations/huggingface/spaces.ts';
import { connectMcp } from '../../src/integrations/mcp/connect.ts';
import { listTools } from '../../src/integrations/mcp/list-tools.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';

describe('Gradio MCP endpoints', function () {
  let legacyOnly: TestMcpServer;

  before(async function () {
    legacyOnly = await startTestMcpServer({ name: 'gradio', basePath: '/gradio_api/mcp/', transport: 'sse-only', toolPrefix: 'space_' });
  });
  after(async function () {
    await legacyOnly?.stop();
  });

  it('derives the legacy SSE endpoint beside Gradio\'s Streamable HTTP one, and only there', function () {
    assert.equal(legacySseUrlOf('https://bob-scanner.hf.space/gradio_api/mcp/'), 'https://bob-scanner.hf.space/gradio_api/mcp/sse');
    assert.equal(legacySseUrlOf('https://bob-scanner.hf.space/gradio_api/mcp'), 'https://bob-scanner.hf.space/gradio_api/mcp/sse');
    assert.equal(legacySseUrlOf('https://example.com/mcp'), undefined);
  });

  it('falls back to the legacy SSE endpoint of a Space that does not speak Streamable HTTP', async function () {
    const endpoint = { url: `${legacyOnly.origin}/gradio_api/mcp/`, transport: 'auto' as const, sseUrl: legacySseUrlOf(`${legacyOnly.origin}/gradio_api/mcp/`) };
    assert.equal(endpoint.sseUrl, legacyOnly.sseUrl);
    const tools = await listTools(endpoint, { timeoutMs: 5000 });
    assert.ok(tools.some((t) => t.name === 'space_echo'));
    const conn = await connectMcp(endpoint, { timeoutMs: 5000 });
    try {
      assert.equal(conn.transportUsed, 'sse');
    } finally {
      await conn.close();
    }
  });
});
