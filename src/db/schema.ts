import type { ColumnType, Generated, JSONColumnType } from 'kysely';
import type { ProjectRole } from '../core/roles.ts';

// Row types: snake_case as in Postgres. Domain objects (camelCase) are built by the repositories.

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  id: Generated<string>;
  login: string;
  display_name: string | null;
  identities: ColumnType<Record<string, unknown>, string | undefined, string>;
  hf_token_sealed: string | null;
  github_token_sealed: ColumnType<string | null, string | null | undefined, string | null>;
  is_admin: Generated<boolean>;
  created_at: CreatedAt;
}

export interface ProjectsTable {
  id: Generated<string>;
  name: string;
  description: string | null;
  created_by: string;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface ProjectMembersTable {
  project_id: string;
  user_id: string;
  role: ProjectRole;
  created_at: CreatedAt;
}

export interface McpServersTable {
  id: Generated<string>;
  name: string;
  description: string | null;
  oracle_url: string | null;
  transport: string;
  health_path: string | null;
  can_run_on_user_space: boolean;
  fallback_to_oracle: boolean;
  location: string | null;
  cost: number;
  max_concurrency: number | null;
  enabled: boolean;
  visibility: Generated<'private' | 'public'>;
  /** The provider whose token, from the submitting user's sign-in, goes with each call; null: none. */
  acts_as: ColumnType<'github' | null, 'github' | null | undefined, 'github' | null>;
  created_by: string | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface McpToolsTable {
  server_id: string;
  name: string;
  description: string | null;
  input_schema: JSONColumnType<Record<string, unknown>>;
  heavy: boolean;
  capabilities: string[];
  timeout_ms: number | null;
  discovered_at: UpdatedAt;
}

export interface SpaceBindingsTable {
  project_id: string;
  server_id: string;
  space_id: string | null;
  url: string;
  token_sealed: string | null;
  /** Server tool name → the Space's tool name (Gradio prefixes names), when the Space's tools were listed. */
  tool_map: JSONColumnType<Record<string, string> | null, string | null, string | null>;
  missing_tools: string[] | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface TasksTable {
  id: string;
  project_id: string;
  created_by: string;
  tool: string;
  arguments: JSONColumnType<Record<string, unknown>>;
  heavy: ColumnType<boolean, boolean | undefined, boolean>;
  consent_to_oracle: ColumnType<boolean, boolean | undefined, boolean>;
  idempotency_key: string | null;
  request_hash: string | null;
  workflow_id: string;
  status: string;
  target: JSONColumnType<Record<string, unknown> | null, string | null, string | null>;
  attempts: JSONColumnType<unknown[]>;
  error: JSONColumnType<Record<string, unknown> | null, string | null, string | null>;
  event_seq: Generated<number>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
  finished_at: Date | null;
  /** Set once the task's workflow exists; null on a task accepted but not yet started. */
  workflow_started_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** The failed or canceled task this one reruns. */
  retry_of: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ResultsTable {
  task_id: string;
  content: Buffer | null;
  location: string | null;
  size: ColumnType<string, number, number>;
  sha256: string;
  media_type: string;
  created_at: CreatedAt;
}

/** A large output between the dispatch that produced it and its upload to the blob store. */
export interface ResultStagingTable {
  task_id: string;
  content: Buffer;
  size: ColumnType<string, number, number>;
  sha256: string;
  media_type: string;
  created_at: CreatedAt;
}

export interface TaskEventsTable {
  task_id: string;
  seq: number;
  type: string;
  data: JSONColumnType<Record<string, unknown>>;
  created_at: CreatedAt;
}

/** Append-only (a trigger refuses UPDATE and DELETE). */
export interface AuditLogTable {
  id: ColumnType<string, never, never>;
  at: CreatedAt;
  actor_user_id: string | null;
  actor_login: string | null;
  actor_kind: string;
  actor_key_id: string | null;
  action: string;
  project_id: string | null;
  target_type: string | null;
  target_id: string | null;
  detail: JSONColumnType<Record<string, unknown>>;
  request_id: string | null;
  ip: string | null;
}

/** A provider account (GitHub, Hugging Face) that signs in as one user. */
export interface UserIdentitiesTable {
  provider: string;
  subject: string;
  user_id: string;
  login: string | null;
  created_at: CreatedAt;
  last_sign_in_at: UpdatedAt;
}

/** Between the redirect to a provider and its callback: the hashed state, the PKCE verifier, a user to link to. */
export interface SignInAttemptsTable {
  state_hash: string;
  provider: string;
  code_verifier: string;
  nonce: string | null;
  link_user_id: string | null;
  created_at: CreatedAt;
  expires_at: Date | string;
  consumed_at: Date | null;
}

export interface RefreshTokensTable {
  id: Generated<string>;
  family_id: string;
  user_id: string;
  token_hash: string;
  created_at: CreatedAt;
  expires_at: Date | string;
  rotated_at: Date | null;
  revoked_at: Date | null;
}

/** One-time codes the app exchanges for tokens after a sign-in redirect. */
export interface SignInCodesTable {
  code_hash: string;
  user_id: string;
  expires_at: Date | string;
  consumed_at: Date | null;
}

export interface ApiKeysTable {
  id: string;
  user_id: string;
  name: string;
  project_id: string | null;
  role: ProjectRole | null;
  secret_hash: Buffer;
  created_at: CreatedAt;
  expires_at: Date | null;
  last_used_at: ColumnType<Date | null, never, Date>;
  revoked_at: ColumnType<Date | null, never, Date>;
}

export interface AgentsTable {
  id: Generated<string>;
  project_id: string;
  name: string;
  version: number;
  created_by: string | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface AgentVersionsTable {
  agent_id: string;
  version: number;
  definition: JSONColumnType<Record<string, unknown>>;
  created_by: string | null;
  created_at: CreatedAt;
}

export interface AgentRunsTable {
  id: string;
  project_id: string;
  agent_id: string | null;
  agent_name: string;
  agent_version: number;
  definition: JSONColumnType<Record<string, unknown>>;
  input: ColumnType<unknown, string, string>;
  created_by: string;
  idempotency_key: string | null;
  request_hash: string | null;
  workflow_id: string;
  status: string;
  step_states: JSONColumnType<Record<string, unknown>, string | undefined, string>;
  error: JSONColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  event_seq: Generated<number>;
  workflow_started_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
  finished_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface AgentRunStepsTable {
  run_id: string;
  step_id: string;
  item: number;
  task_id: string | null;
  status: string;
  output: ColumnType<unknown, string | null | undefined, string | null>;
  updated_at: UpdatedAt;
}

export interface AgentRunEventsTable {
  run_id: string;
  seq: number;
  type: string;
  data: JSONColumnType<Record<string, unknown>>;
  created_at: CreatedAt;
}

/** search_text and search are kept by a trigger from name, entity_type and observations. */
export interface KgEntitiesTable {
  id: ColumnType<string, never, never>;
  project_id: string;
  name: string;
  entity_type: string;
  observations: string[];
  search_text: ColumnType<string, never, never>;
  search: ColumnType<string, never, never>;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface KgRelationsTable {
  id: ColumnType<string, never, never>;
  project_id: string;
  from_name: string;
  to_name: string;
  relation_type: string;
  created_at: CreatedAt;
}

export interface Database {
  users: UsersTable;
  projects: ProjectsTable;
  project_members: ProjectMembersTable;
  mcp_servers: McpServersTable;
  mcp_tools: McpToolsTable;
  space_bindings: SpaceBindingsTable;
  tasks: TasksTable;
  results: ResultsTable;
  result_staging: ResultStagingTable;
  task_events: TaskEventsTable;
  audit_log: AuditLogTable;
  user_identities: UserIdentitiesTable;
  sign_in_attempts: SignInAttemptsTable;
  refresh_tokens: RefreshTokensTable;
  sign_in_codes: SignInCodesTable;
  api_keys: ApiKeysTable;
  agents: AgentsTable;
  agent_versions: AgentVersionsTable;
  agent_runs: AgentRunsTable;
  agent_run_steps: AgentRunStepsTable;
  agent_run_events: AgentRunEventsTable;
  kg_entities: KgEntitiesTable;
  kg_relations: KgRelationsTable;
}
