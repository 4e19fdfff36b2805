import { Ajv, type CodeOptions, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { RE2 } from 're2-wasm';

// Tool arguments are checked against the input schema the server declared in tools/list, at submission, so a
// caller hears about a wrong argument at once (422) instead of from a failed task minutes later.

export interface ArgumentProblem {
  path: string;
  message: string;
}

/**
 * `pattern` and `patternProperties` come from registered servers and run inside the API process: a backtracking
 * engine lets one pattern like `^(a+)+$` stall every request for seconds. RE2 matches in linear time; a pattern it
 * cannot compile (backreferences, lookaround) makes the schema unusable instead. re2-wasm refuses to work without
 * the `u` flag, which ajv passes by default (unicodeRegExp) but we do not rely on that.
 */
const linearRegExp: NonNullable<CodeOptions['regExp']> = Object.assign((pattern: string, flags: string) => new RE2(pattern, flags.includes('u') ? flags : `${flags}u`), {
  // Only read when ajv generates standalone code, which we never do; ajv still wants a name for the function.
  code: 'linearRegExp',
});

export function createArgumentValidator(opts: { onUnusableSchema?: (tool: string, err: unknown) => void } = {}) {
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, code: { regExp: linearRegExp } });
  // format "regex" only compiles the argument with `new RegExp` (parsing is linear); it never executes it.
  addFormats.default(ajv);
  // ajv-formats' "url" regex backtracks super-linearly (40 KB of ':' took 4 s); the WHATWG parser is linear.
  ajv.addFormat('url', (s: string) => /^(?:https?|ftp):\/\/\S+$/i.test(s) && URL.canParse(s));
  // Schemas are compiled once per distinct text; servers rarely change them.
  const compiled = new Map<string, ValidateFunction | null>();

  function compile(tool: string, schema: Record<string, unknown>): ValidateFunction | null {
    const key = JSON.stringify(schema);
    if (!compiled.has(key)) {
      try {
        const { $schema: _dialect, ...body } = schema;
        compiled.set(key, ajv.compile(body));
      } catch (err) {
        // A schema we cannot read must not block the tool: the server still validates its own input.
        opts.onUnusableSchema?.(tool, err);
        compiled.set(key, null);
      }
    }
    return compiled.get(key)!;
  }

  return {
    /** Problems under the first schema, or [] when any offering's schema accepts the arguments. */
    check(tool: string, schemas: Array<Record<string, unknown>>, args: Record<string, unknown>): ArgumentProblem[] {
      let first: ArgumentProblem[] | undefined;
      for (const schema of schemas) {
        const validate = compile(tool, schema);
        if (!validate || validate(args)) return [];
        first ??= (validate.errors ?? []).map((e) => ({
          path: ['arguments', ...e.instancePath.split('/').filter(Boolean)].join('.'),
          message: e.keyword === 'additionalProperties' ? `unknown property "${(e.params as { additionalProperty: string }).additionalProperty}"` : (e.message ?? 'invalid'),
        }));
      }
      return first ?? [];
    },
  };
}

export type ArgumentValidator = ReturnType<typeof createArgumentValidator>;
