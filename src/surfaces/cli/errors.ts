/** Bad flags, dates or arguments: print the message and usage, exit 2. */
export class UsageError extends Error {}

/** Something the user can fix (corrupt database, unreadable price file): message + hint, exit 1. */
export class UserFacingError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}
