// The `kg` row: search_nodes on one generated graph, served by a project's knowledge graph (MCP over HTTP, Postgres)
// and by the reference memory server (MCP over stdio, a JSONL file it reads on every call), in alternating rounds;
// and neighbours at depth 2 over REST. BENCH_KG_ENTITIES entities (default 5000), three relations per entity.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { sql } from 'kysely';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { PROJECT_ROOT } from '../src/compose.ts';
import { createKnowledgeGraph } from '../src/core/knowledge-graph.ts';
import type { Entity, Relation } from '../src/core/knowledge-graph-model.ts';
import type { RowContext } from './extra-rows.ts';
import { fmt, percentile } from './stats.ts';

const REFERENCE_SERVER = path.join(PROJECT_ROOT, 'node_modules/@modelcontextprotocol/server-memory/dist/index.js');
const TYPES = ['person', 'company', 'service', 'repository', 'dataset', 'model', 'paper', 'team', 'issue', 'host'];
const VOCABULARY = 2000;

/** A small seeded generator, so both servers and every run see the same graph. */
function mulberry32(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generateGraph(n: number): { entities: Entity[]; relations: Relation[] } {
  const rand = mulberry32(42);
  const word = () => `tok${Math.floor(rand() * VOCABULARY)}z`;
  const entities = Array.from({ length: n }, (_, i) => ({
    name: `entity-${i}`,
    entityType: TYPES[i % TYPES.length]!,
    observations: Array.from({ length: 3 }, () => `${word()} ${word()} ${word()} observed in the field`),
  }));
  const relations: Relation[] = [];
  const seen = new Set<string>();
  while (relations.length < n * 3) {
    const from = `entity-${Math.floor(rand() * n)}`;
    const to = `entity-${Math.floor(rand() * n)}`;
    const relationType = ['uses', 'owns', 'cites', 'depends_on'][Math.floor(rand() * 4)]!;
    const key = `${from}|${to}|${relationType}`;
    if (from === to || seen.has(key)) continue;
    seen.add(key);
    relations.push({ from, to, relationType });
  }
  return { entities, relations };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export async function kgRow(ctx: RowContext, opts: { entities: number }): Promise<string[]> {
  const graph = generateGraph(opts.entities);
  ctx.progress(`kg: loading ${graph.entities.length} entities and ${graph.relations.length} relations`);
  const kg = createKnowledgeGraph({ db: ctx.db });
  for (let i = 0; i < graph.entities.length; i += 1000) await kg.upsert(ctx.projectId, { entities: graph.entities.slice(i, i + 1000) });
  for (let i = 0; i < graph.relations.length; i += 1000) await kg.upsert(ctx.projectId, { relations: graph.relations.slice(i, i + 1000) });
  // What autovacuum does after a bulk load, done at once: statistics, and the visibility map that lets index-only
  // scans skip the heap.
  await sql`vacuum analyze kg_entities, kg_relations`.execute(ctx.db);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'kg-bench-'));
  const file = path.join(dir, 'memory.jsonl');
  await writeFile(
    file,
    [...graph.entities.map((e) => JSON.stringify({ type: 'entity', ...e })), ...graph.relations.map((r) => JSON.stringify({ type: 'relation', ...r }))].join('\n'),
  );
  const reference = new Client({ name: 'kg-bench', version: '1.0.0' });
  const ours = new Client({ name: 'kg-bench', version: '1.0.0' });
  try {
    await reference.connect(new StdioClientTransport({ command: process.execPath, args: [REFERENCE_SERVER], env: { MEMORY_FILE_PATH: file }, stderr: 'ignore' }));
    await ours.connect(new StreamableHTTPClientTransport(new URL(`${ctx.url}/v1/projects/${ctx.projectId}/kg/mcp`), { requestInit: { headers: { Authorization: `Bearer ${ctx.token}` } } }));
    const queries = Array.from({ length: 20 }, (_, i) => `tok${(i * 97) % VOCABULARY}z`);
    const search = (c: Client, query: string) => c.callTool({ name: 'search_nodes', arguments: { query } });
    // Same answers first: a fast wrong answer is no result.
    const [a, b] = await Promise.all([search(ours, queries[0]!), search(reference, queries[0]!)]);
    const count = (r: any) => r.structuredContent.entities.length;
    if (count(a) !== count(b)) throw new Error(`kg: search_nodes disagree: ours ${count(a)} entities, reference ${count(b)}`);
    const matches = count(a);
    const oursMs: number[] = [];
    const refMs: number[] = [];
    for (let round = 0; round < Math.max(2, ctx.rounds * 2); round++) {
      ctx.progress(`kg: search_nodes round ${round + 1}`);
      const order = round % 2 === 0 ? ([ours, reference] as const) : ([reference, ours] as const);
      for (const client of order) for (const q of queries) (client === ours ? oursMs : refMs).push(await timed(() => search(client, q)));
    }
    // The same calls in this process, straight to the service: Postgres plus row mapping, without MCP or HTTP.
    const serviceSearchMs: number[] = [];
    let answerBytes = 0;
    for (let round = 0; round < Math.max(1, ctx.rounds); round++) {
      for (const q of queries) serviceSearchMs.push(await timed(async () => (answerBytes = JSON.stringify(await kg.searchNodes(ctx.projectId, q)).length)));
    }
    const headers = { Authorization: `Bearer ${ctx.token}` };
    const neighbourMs: number[] = [];
    const serviceNeighbourMs: number[] = [];
    for (let i = 0; i < 100; i++) {
      const name = `entity-${(i * 37) % graph.entities.length}`;
      neighbourMs.push(
        await timed(async () => {
          const res = await fetch(`${ctx.url}/v1/projects/${ctx.projectId}/kg/entities/${name}/neighbours?depth=2`, { headers });
          if (res.status !== 200) throw new Error(`kg: neighbours answered ${res.status}`);
          await res.arrayBuffer();
        }),
      );
      serviceNeighbourMs.push(await timed(() => kg.neighbours(ctx.projectId, name, { depth: 2 })));
    }
    const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
    const p50 = (xs: number[]) => percentile(sorted(xs), 50);
    const p95 = (xs: number[]) => percentile(sorted(xs), 95);
    return [
      `kg — ${graph.entities.length} entities, ${graph.relations.length} relations in one project; search_nodes for one word (≈${matches} matches), ${oursMs.length} calls per side, alternating`,
      `  ours: MCP over HTTP → API → Postgres (trigram index); reference: @modelcontextprotocol/server-memory over stdio (reads its JSONL file per call)`,
      `${''.padEnd(28)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}`,
      `${'search_nodes ours'.padEnd(28)}${fmt(p50(oursMs)).padStart(10)}${fmt(p95(oursMs)).padStart(10)}`,
      `${'search_nodes reference'.padEnd(28)}${fmt(p50(refMs)).padStart(10)}${fmt(p95(refMs)).padStart(10)}`,
      `${'ratio ours/reference'.padEnd(28)}${fmt(p50(oursMs) / p50(refMs), 2).padStart(10)}${fmt(p95(oursMs) / p95(refMs), 2).padStart(10)}`,
      `${'  of which service (SQL)'.padEnd(28)}${fmt(p50(serviceSearchMs)).padStart(10)}${fmt(p95(serviceSearchMs)).padStart(10)}   (in-process call, no MCP/HTTP; answer ≈${Math.round(answerBytes / 1024)} KiB of JSON)`,
      `${'neighbours depth 2 (REST)'.padEnd(28)}${fmt(p50(neighbourMs)).padStart(10)}${fmt(p95(neighbourMs)).padStart(10)}`,
      `${'  of which service (SQL)'.padEnd(28)}${fmt(p50(serviceNeighbourMs)).padStart(10)}${fmt(p95(serviceNeighbourMs)).padStart(10)}`,
      '',
    ];
  } finally {
    await Promise.all([reference.close(), ours.close()]);
    await rm(dir, { recursive: true, force: true });
  }
}
