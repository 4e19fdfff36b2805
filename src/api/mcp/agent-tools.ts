import { setTimeout as sleep } from 'node:timers/promises';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { TERMINAL_RUN_STATUSES } from '../../core/agent-model.ts';
import type { AgentRunService } from '../../core/agent-runs.ts';
import type { AgentService } from '../../core/agents.ts';
import { errorResult, type ProvidedTool, type ToolProvider } from './tool-provider.ts';

/** Agents are listed as `agent__<name>`, apart from the registry's tool names. */
export const AGENT_TOOL_PREFIX = 'agent__';

/**
 * The project's agents, one tool per agent: a call starts a run with the arguments as its input and answers with
 * every step's output when the run ends. The run is durable (a parent workflow); the wait is not: a caller that gives
 * up leaves the run going, visible at GET /v1/agent-runs/:id.
 */
export function agentTools(deps: {
  agents: Pick<AgentService, 'list'>;
  agentRuns: Pick<AgentRunService, 'start' | 'get' | 'outputs'>;
  pollMs?: number;
  /** How long one call waits for its run; past it the answer names the run, still going. */
  maxWaitMs?: number;
}): ToolProvider {
  const pollMs = deps.pollMs ?? 250;
  const maxWaitMs = deps.maxWaitMs ?? 10 * 60_000;
  return {
    name: 'agents',
    async tools(caller): Promise<ProvidedTool[]> {
      const { items } = await deps.agents.list(caller.userId, caller.projectId);
      return items.map((agent) => {
        const schema = agent.inputSchema && agent.inputSchema.type === 'object' ? agent.inputSchema : { type: 'object' };
        const definition: Tool = {
          name: `${AGENT_TOOL_PREFIX}${agent.name}`,
          title: agent.name,
          description: agent.description ?? `Runs the agent "${agent.name}" (${agent.steps.length} steps) and answers with its steps' outputs`,
          inputSchema: schema as Tool['inputSchema'],
          execution: { taskSupport: 'forbidden' },
          _meta: { 'orchestrator/agent': agent.name, 'orchestrator/agentVersion': agent.version },
        };
        return {
          definition,
          async call(args, c) {
            const { run } = await deps.agentRuns.start(c.userId, c.projectId, agent.name, args);
            const deadline = Date.now() + maxWaitMs;
            let view = run;
            while (!(TERMINAL_RUN_STATUSES as readonly string[]).includes(view.status)) {
              if (Date.now() > deadline) {
                return { kind: 'immediate', result: { content: [{ type: 'text', text: `run ${run.id} is still ${view.status}; follow it at /v1/agent-runs/${run.id}` }], structuredContent: { runId: run.id, status: view.status } } };
              }
              await sleep(pollMs);
              view = await deps.agentRuns.get(c.userId, run.id);
            }
            if (view.status !== 'succeeded') {
              const why = view.error ? `: ${JSON.stringify(view.error)}` : '';
              return { kind: 'immediate', result: errorResult(`run ${run.id} ${view.status}${why}`, { runId: run.id, status: view.status, ...(view.error ? { error: view.error } : {}) }) };
            }
            const outputs = await deps.agentRuns.outputs(c.userId, run.id);
            return {
              kind: 'immediate',
              result: { content: [{ type: 'text', text: JSON.stringify(outputs) }], structuredContent: { runId: run.id, status: view.status, outputs } },
            };
          },
        };
      });
    },
  };
}
