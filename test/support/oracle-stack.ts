import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from './mcp-test-server.ts';
import { startStack, type Stack } from './stack.ts';

export interface OracleStack {
  stack: Stack;
  oracle: TestMcpServer;
  token: string;
  projectId: string;
  stop(): Promise<void>;
}

/**
 * The setup most task tests share: a stack, a test MCP server registered as the oracle of server `tools`, a signed-in
 * user and a project of theirs.
 */
export async function startOracleStack(opts: { stack?: Parameters<typeof startStack>[0]; login?: string; project?: string } = {}): Promise<OracleStack> {
  const oracle = await startTestMcpServer({ name: 'oracle' });
  const stack = await startStack(opts.stack);
  const token = await stack.token(opts.login ?? 'alice');
  const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: opts.project ?? 'demo' } })).body.id as string;
  const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
  assert.equal(reg.status, 201, reg.text);
  return {
    stack,
    oracle,
    token,
    projectId,
    async stop() {
      await stack.stop();
      await oracle.stop();
    },
  };
}
