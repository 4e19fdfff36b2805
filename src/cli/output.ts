import { createColors } from 'picocolors';

// How the CLI speaks: results on stdout, everything a person reads along the way on stderr, so
// `orchestrator run … > out.txt` keeps only the result. Colors only on a terminal, never with NO_COLOR or --no-color.

export interface TextStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: TextStream;
  stderr: TextStream;
  stdin: NodeJS.ReadableStream;
}

export type Colors = ReturnType<typeof createColors>;

export interface Output {
  json: boolean;
  /** Color for stderr (where status lines go). */
  colors: Colors;
  /** A line of the result (stdout). */
  print(line: string): void;
  /** A line for the person watching (stderr); silent under --json. */
  note(line: string): void;
  printJson(value: unknown): void;
  table(rows: object[], columns: string[]): void;
  /** Whether stderr is a terminal a live progress bar can redraw. */
  interactive: boolean;
  stderr: TextStream;
}

export function wantsColor(stream: TextStream, env: NodeJS.ProcessEnv, flag: boolean): boolean {
  return flag && Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb';
}

export function createOutput(io: CliIo, opts: { json: boolean; color: boolean }): Output {
  const colors = createColors(wantsColor(io.stderr, io.env, opts.color));
  const stdoutColors = createColors(wantsColor(io.stdout, io.env, opts.color));
  return {
    json: opts.json,
    colors,
    interactive: Boolean(io.stderr.isTTY) && !opts.json,
    stderr: io.stderr,
    print: (line) => void io.stdout.write(`${line}\n`),
    note: (line) => {
      if (!opts.json) io.stderr.write(`${line}\n`);
    },
    printJson: (value) => void io.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    table: (rows, columns) => void io.stdout.write(formatTable(rows, columns, stdoutColors)),
  };
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function formatTable(rows: object[], columns: string[], colors?: Colors): string {
  if (rows.length === 0) return '(none)\n';
  const cells = rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  const header = line(columns.map((c) => c.toUpperCase()));
  return `${colors ? colors.bold(header) : header}\n${cells.map(line).join('\n')}\n`;
}

const STATUS_COLOR: Record<string, keyof Colors> = {
  succeeded: 'green',
  failed: 'red',
  canceled: 'yellow',
  awaiting_consent: 'magenta',
  running: 'cyan',
};

export function paintStatus(colors: Colors, status: string): string {
  const name = STATUS_COLOR[status];
  return name ? (colors[name] as (s: string) => string)(status) : status;
}
