import type { Db } from '../db/create-db.ts';
import type { AgentDefinition } from './agent-model.ts';
import type { AgentStepKinds } from './agent-step-kinds.ts';
import { AgentDefinitionError, planAgent } from './agent-validation.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import type { ProjectService } from './projects.ts';
import * as repo from './agents-repository.ts';

export interface AgentView extends AgentDefinition {
  version: number;
  createdAt: string;
  updatedAt: string;
}

function toView(row: repo.AgentRow): AgentView {
  const def = row.definition as unknown as AgentDefinition;
  return { ...def, name: row.name, version: row.version, createdAt: row.created_at.toISOString(), updatedAt: row.updated_at.toISOString() };
}

/** Agent definitions of a project: viewers read them, members write them. Every save is validated and versioned. */
export function createAgentService(deps: {
  db: Db;
  projects: Pick<ProjectService, 'get' | 'requireRole'>;
  /** True when some enabled server the project may use offers the tool. */
  toolExists: (tool: string, projectId: string) => Promise<boolean>;
  stepKinds: AgentStepKinds;
}) {
  const { db } = deps;

  async function validate(projectId: string, def: AgentDefinition): Promise<void> {
    const plan = planAgent(def, { stepKinds: new Set(deps.stepKinds.keys()) });
    for (const step of plan) {
      const kind = step.kind === 'tool' ? undefined : deps.stepKinds.get(step.kind);
      try {
        kind?.validate?.(def.steps.find((s) => s.id === step.id)!.arguments ?? {});
      } catch (err) {
        throw new AgentDefinitionError('InvalidStep', step.id, `${step.kind}: ${(err as Error).message}`);
      }
      if (step.kind === 'tool' && !(await deps.toolExists(step.tool!, projectId))) {
        throw new AgentDefinitionError('UnknownTool', step.id, `no enabled server offers the tool "${step.tool}"`);
      }
    }
  }

  return {
    async create(userId: string, projectId: string, def: AgentDefinition): Promise<AgentView> {
      await deps.projects.requireRole(userId, projectId, 'member');
      await validate(projectId, def);
      const id = await db.transaction().execute((trx) => repo.insertAgent(trx, { projectId, name: def.name, definition: { ...def }, userId }));
      if (!id) throw new ConflictError('AgentExists', `the project already has an agent named "${def.name}"`, { name: def.name });
      return toView((await repo.findAgent(db, projectId, def.name))!);
    },

    async update(userId: string, projectId: string, name: string, def: Omit<AgentDefinition, 'name'>): Promise<AgentView> {
      await deps.projects.requireRole(userId, projectId, 'member');
      const full = { ...def, name };
      await validate(projectId, full);
      const version = await db.transaction().execute((trx) => repo.insertNextVersion(trx, { projectId, name, definition: full, userId }));
      if (version === undefined) throw new NotFoundError('Agent', name);
      return toView((await repo.findAgent(db, projectId, name))!);
    },

    async get(userId: string, projectId: string, name: string): Promise<AgentView> {
      await deps.projects.get(userId, projectId);
      const row = await repo.findAgent(db, projectId, name);
      if (!row) throw new NotFoundError('Agent', name);
      return toView(row);
    },

    async list(userId: string, projectId: string): Promise<{ items: AgentView[] }> {
      await deps.projects.get(userId, projectId);
      return { items: (await repo.listAgents(db, projectId)).map(toView) };
    },

    /** Runs already started keep their own copy of the definition and go on. */
    async remove(userId: string, projectId: string, name: string): Promise<void> {
      await deps.projects.requireRole(userId, projectId, 'member');
      if (!(await repo.deleteAgent(db, projectId, name))) throw new NotFoundError('Agent', name);
    },

    /** The current version, for starting a run (access already checked by the caller). */
    async current(projectId: string, name: string): Promise<{ id: string; version: number; definition: AgentDefinition } | undefined> {
      const row = await repo.findAgent(db, projectId, name);
      return row ? { id: row.id, version: row.version, definition: row.definition as unknown as AgentDefinition } : undefined;
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
