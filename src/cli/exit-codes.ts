/** Exit codes a script can switch on. */
export const EXIT = {
  succeeded: 0,
  failed: 1,
  usage: 2,
  awaitingConsent: 3,
  canceled: 4,
} as const;

/** An error the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** The exit code for a task that stopped in `status`. */
export function exitCodeForStatus(status: string): number {
  switch (status) {
    case 'succeeded':
      return EXIT.succeeded;
    case 'awaiting_consent':
      return EXIT.awaitingConsent;
    case 'canceled':
      return EXIT.canceled;
    default:
      return EXIT.failed;
  }
}
