/**
 * User-facing errors: one line naming what is wrong and what to do. The CLI prints
 * `error: <message>` and exits with `code` (2 for bad input/config, 1 otherwise) — never a stack trace.
 */
export class UserError extends Error {
  constructor(message: string, readonly code = 2) {
    super(message);
    this.name = "UserError";
  }
}

/** Formats any thrown value as one line. Unexpected errors keep their class name. */
export function oneLine(err: unknown): string {
  if (err instanceof UserError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`.split("\n")[0];
  return String(err).split("\n")[0];
}
