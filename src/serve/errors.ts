/**
 * Errors the service answers with. Every error reply has one stable shape,
 * `{"error": {"code": "...", "message": "..."}}`: `code` is for programs (it
 * never changes for a given failure), `message` is one line for people.
 */
import { VaeguardError } from "../core/errors.js";

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** A failure with an HTTP status, a stable code and optional headers (Retry-After). */
export class HttpError extends VaeguardError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);
