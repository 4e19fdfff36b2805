import type { Connection } from '@temporalio/client';

export type SearchAttributeKind = 'KEYWORD' | 'TEXT' | 'INT' | 'DOUBLE' | 'BOOL' | 'DATETIME' | 'KEYWORD_LIST';

export interface NamespaceSetupOptions {
  namespace: string;
  /** Raised to this when the namespace keeps history for less; never lowered. */
  retentionDays?: number;
  searchAttributes: Record<string, SearchAttributeKind>;
  /** How long to wait for newly added attributes to become visible; default 30000. */
  visibleTimeoutMs?: number;
}

type SearchAttributeMap = NonNullable<
  Parameters<Connection['operatorService']['addSearchAttributes']>[0]['searchAttributes']
>;
type ProtoDuration = NonNullable<
  NonNullable<Parameters<Connection['workflowService']['updateNamespace']>[0]['config']>['workflowExecutionRetentionTtl']
>;

/** temporal.api.enums.v1.IndexedValueType wire numbers; fixed by the protocol. */
const INDEXED_VALUE_TYPE: Record<SearchAttributeKind, number> = {
  TEXT: 1,
  KEYWORD: 2,
  INT: 3,
  DOUBLE: 4,
  BOOL: 5,
  DATETIME: 6,
  KEYWORD_LIST: 7,
};
const KIND_BY_NUMBER = new Map(Object.entries(INDEXED_VALUE_TYPE).map(([kind, n]) => [n, kind]));

const GRPC_ALREADY_EXISTS = 6;
const SECONDS_PER_DAY = 86_400;

/**
 * The dev server applies `--search-attribute` only when it first creates a namespace, and new
 * namespaces keep history for 24 h, so every boot registers what is missing through the API.
 * Safe to run from several processes at once.
 */
export async function ensureNamespaceReady(connection: Connection, opts: NamespaceSetupOptions): Promise<void> {
  const { namespace } = opts;
  const wanted = Object.entries(opts.searchAttributes);
  const present = await customSearchAttributes(connection, namespace);

  const conflicts = wanted.filter(([name, kind]) => present.has(name) && present.get(name) !== kind);
  if (conflicts.length > 0) {
    throw new Error(
      `namespace ${namespace} already has search attributes with another type: ` +
        conflicts.map(([name, kind]) => `${name} is ${present.get(name)}, wanted ${kind}`).join('; '),
    );
  }

  const missing = wanted.filter(([name]) => !present.has(name));
  // One call per attribute: a batch fails as a whole if a concurrent boot added one of them first.
  for (const [name, kind] of missing) {
    try {
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: { [name]: INDEXED_VALUE_TYPE[kind] } as SearchAttributeMap,
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
  if (missing.length > 0) {
    await waitUntilVisible(connection, namespace, missing.map(([name]) => name), opts.visibleTimeoutMs ?? 30_000);
  }

  if (opts.retentionDays !== undefined) await raiseRetention(connection, namespace, opts.retentionDays);
}

async function customSearchAttributes(connection: Connection, namespace: string): Promise<Map<string, string>> {
  const response = await connection.operatorService.listSearchAttributes({ namespace });
  return new Map(
    Object.entries(response.customAttributes ?? {}).map(([name, n]) => [name, KIND_BY_NUMBER.get(n) ?? `#${n}`]),
  );
}

async function waitUntilVisible(
  connection: Connection,
  namespace: string,
  names: string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const present = await customSearchAttributes(connection, namespace);
    const pending = names.filter((name) => !present.has(name));
    if (pending.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`search attributes ${pending.join(', ')} not visible in ${namespace} after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function raiseRetention(connection: Connection, namespace: string, days: number): Promise<void> {
  const wantedSeconds = Math.round(days * SECONDS_PER_DAY);
  const described = await connection.workflowService.describeNamespace({ namespace });
  // Duration seconds arrive as a protobufjs Long; Number() goes through its toString.
  const currentSeconds = Number(described.config?.workflowExecutionRetentionTtl?.seconds ?? 0);
  if (currentSeconds >= wantedSeconds) return;
  await connection.workflowService.updateNamespace({
    namespace,
    // protobufjs encodes a plain number into an int64 field; the typings only name Long.
    config: { workflowExecutionRetentionTtl: { seconds: wantedSeconds } as unknown as ProtoDuration },
  });
}

function isAlreadyExists(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  return code === GRPC_ALREADY_EXISTS || (typeof message === 'string' && /already exists/i.test(message));
}
