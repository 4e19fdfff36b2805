import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

// Tool arguments are checked against the input schema the server declared in tools/list, at submission, so a
// caller hears about a wrong argument at once (422) instead of from a failed task minutes later.

export interface ArgumentProblem {
  path: string;
  message: string;
}

export function createArgumentValidator(opts: { onUnusableSchema?: (tool: string, err: unknown) => void } = {}) {
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  addFormats.default(ajv);
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
