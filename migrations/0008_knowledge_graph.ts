import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// One knowledge graph per project, in the model of the reference MCP memory server: entities (a unique name, a type,
// an ordered list of observations) and relations between entity names. Relations name their ends instead of
// referencing rows because the reference server accepts a relation whose ends do not exist (yet); deleting an entity
// deletes the relations that name it. The insertion order (id) is the order the reference server answers in.

export async function up(db: Kysely<any>): Promise<void> {
  // Trusted since Postgres 13: a database owner may create it. It indexes the substring search of search_nodes.
  await sql`create extension if not exists pg_trgm`.execute(db);
  await db.schema
    .createTable('kg_entities')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('entity_type', 'text', (c) => c.notNull())
    .addColumn('observations', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    // Kept by the trigger below: lower-cased name, type and observations (substring search), and the weighted
    // full-text document (ranked search).
    .addColumn('search_text', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('search', sql`tsvector`, (c) => c.notNull().defaultTo(sql`''::tsvector`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('kg_entities_project_name_key', ['project_id', 'name'])
    .execute();
  await sql`create index kg_entities_project_id_idx on kg_entities (project_id, id)`.execute(db);
  await sql`create index kg_entities_search_idx on kg_entities using gin (search)`.execute(db);
  await sql`create index kg_entities_search_text_idx on kg_entities using gin (search_text gin_trgm_ops)`.execute(db);
  await sql`
    create function kg_entities_search_columns() returns trigger language plpgsql as $$
    begin
      new.search_text := lower(new.name || E'\n' || new.entity_type || E'\n' || array_to_string(new.observations, E'\n'));
      new.search := setweight(to_tsvector('english', new.name), 'A')
        || setweight(to_tsvector('english', new.entity_type), 'B')
        || setweight(to_tsvector('english', array_to_string(new.observations, ' ')), 'C');
      return new;
    end
    $$`.execute(db);
  await sql`create trigger kg_entities_search_columns before insert or update of name, entity_type, observations on kg_entities
    for each row execute function kg_entities_search_columns()`.execute(db);

  await db.schema
    .createTable('kg_relations')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('from_name', 'text', (c) => c.notNull())
    .addColumn('to_name', 'text', (c) => c.notNull())
    .addColumn('relation_type', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('kg_relations_edge_key', ['project_id', 'from_name', 'to_name', 'relation_type'])
    .execute();
  await sql`create index kg_relations_to_idx on kg_relations (project_id, to_name)`.execute(db);
  await sql`create index kg_relations_project_id_idx on kg_relations (project_id, id)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('kg_relations').execute();
  await db.schema.dropTable('kg_entities').execute();
  await sql`drop function if exists kg_entities_search_columns()`.execute(db);
}
