import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolRequestSchema,
  type CallToolResult,
  type CreateTaskResult,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import type { TaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/interfaces.js';
import { $ZodError } from 'zod/v4/core';
import type { ResultService } from '../../core/results.ts';
import type { TaskEventFeed } from '../../core/task-event-feed.ts';
import type { TaskService } from '../../core/tasks.ts';
import type { Logger } from '../../lib/logger.ts';
import { followTask } from './follow-task.ts';
import { callerMessage, projectTaskStore } from './task-store.ts';
import { toMcpTask } from './task-mapping.ts';
import { errorResult, type ProjectCaller, type ProvidedTool, type ToolProvider } from './tool-provider.ts';

export interface McpServerDeps {
  providers: ToolProvider[];
  tasks: TaskService;
  results: Pick<ResultService, 'describe'>;
  feed: TaskEventFeed;
  log: Logger;
  version: string;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** Every provider's tools; a name already taken by an earlier provider is dropped, so names stay unique. */
async function collectTools(providers: ToolProvider[], caller: ProjectCaller, log: Logger): Promise<Map<string, ProvidedTool>> {
  const byName = new Map<string, ProvidedTool>();
  for (const provider of providers) {
    for (const tool of await provider.tools(caller)) {
      if (byName.has(tool.definition.name)) log.warn({ provider: provider.name, tool: tool.definition.name }, 'tool name taken by an earlier provider; not listed');
      else byName.set(tool.definition.name, tool);
    }
  }
  return byName;
}

/**
 * Unexpected failures reach the client as a bare internal error (logged here once); domain errors, whose messages
 * are written for callers, pass as invalid params.
 */
function protocolError(err: unknown, log: Logger): McpError {
  if (err instanceof McpError) return err;
  const message = callerMessage(err);
  if (message) return new McpError(ErrorCode.InvalidParams, message);
  log.error({ err }, 'MCP request failed');
  return new McpError(ErrorCode.InternalError, 'internal error');
}

function guarded<T extends object>(target: T, log: Logger): T {
  return new Proxy(target, {
    get(obj, key, receiver) {
      const value = Reflect.get(obj, key, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        try {
          return await value.apply(obj, args);
        } catch (err) {
          throw protocolError(err, log);
        }
      };
    },
  });
}

/**
 * The orchestrator as an MCP server, for one caller and project and one request (the endpoint is stateless: every
 * request builds its own). Tools come from the providers; a tool that runs as a durable task either answers when the
 * task ends (with progress notifications on the way) or, asked for a task, hands back the task at once.
 */
export function createOrchestratorMcpServer(deps: McpServerDeps, caller: ProjectCaller, publicUrl: string): Server {
  const log = deps.log.child({ component: 'mcp-endpoint', projectId: caller.projectId });
  const store = projectTaskStore({ tasks: deps.tasks, results: deps.results, caller, publicUrl });
  const server = new Server(
    { name: 'orchestrator', version: deps.version },
    {
      capabilities: {
        tools: { listChanged: false },
        logging: {},
        tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } },
      },
      taskStore: guarded<TaskStore>(store, log),
      instructions:
        'Each tool call runs as a durable task of the orchestrator. Call tools as MCP tasks to get the task id at once and ' +
        'poll it; a task in status input_required waits for consent, given with the "consent" tool.',
    },
  );

  server.setRequestHandler(ListToolsRequestSchema, async () => {
    try {
      return { tools: [...(await collectTools(deps.providers, caller, log)).values()].map((t) => t.definition) };
    } catch (err) {
      throw protocolError(err, log);
    }
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra: Extra): Promise<CallToolResult | CreateTaskResult> => {
    const { name, arguments: args = {}, task: asTask } = request.params;
    const tool = (await collectTools(deps.providers, caller, log).catch((err: unknown) => Promise.reject(protocolError(err, log)))).get(name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `unknown tool "${name}"`);
    const support = tool.definition.execution?.taskSupport ?? 'forbidden';
    if (asTask && support === 'forbidden') throw new McpError(ErrorCode.InvalidParams, `the tool "${name}" does not run as a task`);
    if (!asTask && support === 'required') throw new McpError(ErrorCode.InvalidParams, `the tool "${name}" runs only as a task`);

    let run;
    try {
      run = await tool.call(args, caller);
    } catch (err) {
      // A refusal the caller can act on (unknown tool, arguments that do not fit, a limit) is the tool's answer.
      const message = err instanceof $ZodError ? `InvalidArguments: ${err.issues[0]?.path.join('.') ?? ''}: ${err.issues[0]?.message ?? ''}` : callerMessage(err);
      if (!message) throw protocolError(err, log);
      if (asTask) throw new McpError(ErrorCode.InvalidParams, message);
      return errorResult(message);
    }
    if (run.kind === 'immediate') return run.result;
    if (asTask) {
      const view = await store.view(run.taskId);
      if (!view) throw new McpError(ErrorCode.InternalError, 'internal error');
      return { task: toMcpTask(view) };
    }
    try {
      return await followTask({ taskId: run.taskId, store, feed: deps.feed, extra, log });
    } catch (err) {
      throw protocolError(err, log);
    }
  });

  return server;
}
