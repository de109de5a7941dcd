/** The error family of vaeguard. Every error a user can trigger is one of these. */
export class VaeguardError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An error raised inside libtorch (c10::Error or std::exception), with libtorch's message. */
export class TorchError extends VaeguardError {}

/** A failure of vaeguard itself, not of what the user gave it (exit code 1). */
export class InternalError extends VaeguardError {}

/** An argument has the wrong type, range or value. */
export class ArgumentError extends VaeguardError {}

/** Tensor shapes do not fit together. */
export class ShapeError extends VaeguardError {}

/** A tensor was used after dispose(). */
export class DisposedError extends VaeguardError {}

/** A checkpoint file is missing, damaged, or belongs to another architecture. */
export class CheckpointError extends VaeguardError {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
  }
}

/** A data file is missing, truncated or malformed. */
export class DataError extends VaeguardError {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
  }
}

/** A path given by the user cannot be used: an output folder that cannot be written, an input that cannot be read. */
export class PathError extends VaeguardError {
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** Training cannot go on (the loss became NaN or infinite). */
export class TrainingError extends VaeguardError {}

/**
 * The exit code of the CLI for an error: 2 for what the user can fix (usage,
 * arguments, data, checkpoints, paths), 1 for internal failures: libtorch's
 * own errors, a tensor used after dispose() (a bug), and anything that is not
 * a VaeguardError.
 */
export function exitCodeOf(e: unknown): 1 | 2 {
  if (!(e instanceof VaeguardError)) return 1;
  if (e instanceof TorchError || e instanceof DisposedError || e instanceof InternalError) return 1;
  return 2;
}
