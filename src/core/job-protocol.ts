/**
 * The messages between the main thread and job threads (job-threads.ts, the
 * main side; job-thread.ts, the thread side), and errors as plain data: an
 * error crosses the thread boundary as its class name, message and file, and
 * comes back as the same class, so the CLI's one line and exit code are those
 * of the same error thrown in the main thread.
 */
import {
  ArgumentError,
  CheckpointError,
  DataError,
  DisposedError,
  InternalError,
  PathError,
  ShapeError,
  TorchError,
  TrainingError,
  VaeguardError,
  exitCodeOf,
} from "./errors.js";

/** An error as plain data. */
export interface JobError {
  name: string;
  message: string;
  /** CheckpointError, DataError, PathError: the file their message starts with. */
  file?: string;
  /** The user can fix it (exit code 2): kept for error classes this file does not list. */
  usage?: boolean;
}

/** What a job thread tells the main thread besides its job's own messages. */
export type ThreadMessage =
  | { kind: "ready" }
  | { kind: "log"; line: string }
  | { kind: "progress-start"; bar: number; label: string; total: number; unit: string }
  | { kind: "progress"; bar: number; done: number; fields?: Record<string, string | number> }
  | { kind: "progress-stop"; bar: number }
  | { kind: "job"; message: unknown }
  | { kind: "failed"; error: JobError }
  | { kind: "finished" };

/** What the main thread tells a job thread. */
export type MainMessage = { kind: "go" } | { kind: "job"; message: unknown };

/** What a job thread starts with (its workerData). */
export interface ThreadData {
  role: string;
  /** libtorch intra-op threads of this job. */
  threads: number;
  data: unknown;
}

export function toJobError(e: unknown): JobError {
  if (!(e instanceof Error)) return { name: "Error", message: String(e) };
  const file = (e as { file?: unknown }).file;
  return {
    name: e.name,
    message: e.message,
    ...(typeof file === "string" ? { file } : {}),
    ...(exitCodeOf(e) === 2 ? { usage: true } : {}),
  };
}

const PLAIN: Record<string, new (message: string) => VaeguardError> = {
  VaeguardError,
  TorchError,
  InternalError,
  ArgumentError,
  ShapeError,
  DisposedError,
  TrainingError,
};

const WITH_FILE: Record<string, new (file: string, message: string) => VaeguardError> = {
  CheckpointError,
  DataError,
  PathError,
};

/** The error of a job thread as the class it was thrown as (a plain Error keeps its name in the message). */
export function fromJobError(e: JobError): Error {
  const withFile = WITH_FILE[e.name];
  const prefix = `${e.file}: `;
  if (withFile && e.file !== undefined && e.message.startsWith(prefix)) {
    return new withFile(e.file, e.message.slice(prefix.length));
  }
  const plain = PLAIN[e.name];
  if (plain) return new plain(e.message);
  // Subclasses of VaeguardError defined elsewhere keep their exit code; anything else is a bug (exit 1).
  const err = e.usage ? new VaeguardError(e.message) : new Error(e.message);
  err.name = e.name;
  return err;
}
