// Every sealed column and the identity its values are bound to. The identity is the AAD of the seal, so a sealed
// value copied into another row does not open there. Never change these strings: stored values depend on them.

/** What services need of the secret box (src/lib/secret-box.ts). */
export interface SecretBox {
  seal(plain: string, aad: string): string;
  open(sealed: string, aad: string): string;
  isCurrent(sealed: string): boolean;
}

export const spaceBindingTokenAad = (projectId: string, serverId: string) => `space_bindings:${projectId}:${serverId}`;

export const userHfTokenAad = (userId: string) => `users:${userId}:hf_token`;

export const userGithubTokenAad = (userId: string) => `users:${userId}:github_token`;
