// Domain errors: services throw these; only routes map them to HTTP problems and only activities map them to
// Temporal failures. `code` is the stable name clients and operators see.

export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = code;
  }
}

export class NotFoundError extends DomainError {
  constructor(what: 'Project' | 'Task' | 'Server' | 'Tool' | 'SpaceBinding' | 'Result' | 'Member' | 'ApiKey' | 'Entity' | 'Agent' | 'AgentRun', id: string) {
    super(`${what}NotFound`, `${what.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()} "${id}" was not found`, { id });
  }
}

export class ConflictError extends DomainError {}

export class InvalidRequestError extends DomainError {}

/** A dependency (MCP server, Temporal, …) could not do what was asked right now. */
export class UnavailableError extends DomainError {}

/**
 * A registered or bound URL points where the platform does not connect (this machine, a private network, a
 * metadata service). The message never says which rule matched or what the name resolved to.
 */
export class TargetNotAllowedError extends InvalidRequestError {
  constructor() {
    super('TargetNotAllowed', 'the URL is not allowed: it must be http(s) to a public address');
  }
}
