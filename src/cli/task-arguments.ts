import { readFile } from 'node:fs/promises';
import { UsageError } from './exit-codes.ts';

// A tool's arguments from the command line: `--args` gives the whole object (JSON text, @file.json, or - for stdin),
// then each `--arg` sets one key on top. `k=v` is always the string v; `k:=v` is v read as JSON (numbers, booleans,
// objects), the convention HTTPie made familiar, so `--arg text=123` never turns into a number by surprise.

export type ReadText = (source: { file: string } | { stdin: true }) => Promise<string>;

export const readTextSource: ReadText = async (source) => {
  if ('file' in source) return readFile(source.file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};

export function parseArgPair(pair: string): [string, unknown] {
  const json = /^([^=:]+):=(.*)$/s.exec(pair);
  if (json) {
    try {
      return [json[1]!, JSON.parse(json[2]!)];
    } catch {
      throw new UsageError(`--arg ${pair}: the value after := must be JSON (for a plain string use ${json[1]}=…)`);
    }
  }
  const text = /^([^=]+)=(.*)$/s.exec(pair);
  if (!text || text[1]!.includes(':')) throw new UsageError(`--arg ${pair}: expected key=value (a string) or key:=json`);
  return [text[1]!, text[2]!];
}

function asObject(text: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--args ${where}: not valid JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`--args ${where}: must be a JSON object`);
  return value as Record<string, unknown>;
}

export async function buildToolArguments(opts: { args?: string; arg?: string[] }, read: ReadText = readTextSource): Promise<Record<string, unknown>> {
  let base: Record<string, unknown> = {};
  if (opts.args !== undefined) {
    const spec = opts.args;
    if (spec === '-') base = asObject(await read({ stdin: true }), '- (stdin)');
    else if (spec.startsWith('@')) {
      const file = spec.slice(1);
      let text: string;
      try {
        text = await read({ file });
      } catch (err) {
        throw new UsageError(`--args ${spec}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      base = asObject(text, spec);
    } else base = asObject(spec, 'value');
  }
  for (const pair of opts.arg ?? []) {
    const [key, value] = parseArgPair(pair);
    base[key] = value;
  }
  return base;
}
