// Project roles, weakest first: each role may do everything the ones before it may.
// viewer: read · member: + submit, consent, cancel · admin: + members, Space bindings · owner: + delete, roles.

export const PROJECT_ROLES = ['viewer', 'member', 'admin', 'owner'] as const;
export type ProjectRole = (typeof PROJECT_ROLES)[number];

export function roleAtLeast(role: ProjectRole, min: ProjectRole): boolean {
  return PROJECT_ROLES.indexOf(role) >= PROJECT_ROLES.indexOf(min);
}
