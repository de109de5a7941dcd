/**
 * The Redis server behind the job queue: its URL (`redis://HOST:PORT[/DB]`,
 * `rediss://` for TLS, optional user and password) and the one-line messages
 * for a server that cannot be reached.
 */
import { connect } from "node:net";
import type { ConnectionOptions } from "bullmq";
import { VaeguardError } from "../core/errors.js";
import { fail } from "../core/validate.js";

/** The queue every coordinator and worker shares (one Redis database may serve many runs). */
export const QUEUE_NAME = "vaeguard-cells";

export interface RedisTarget {
  /** The URL as given, without its password (for messages). */
  url: string;
  host: string;
  port: number;
  /** ioredis options for BullMQ; each Queue, QueueEvents and Worker makes its own connections from them. */
  connection: ConnectionOptions;
}

/** The Redis server of `--queue`, checked before anything connects. */
export function parseRedisUrl(text: string, name = "--queue"): RedisTarget {
  const expected = "a Redis URL like redis://HOST:PORT";
  let u: URL;
  try {
    u = new URL(String(text).trim());
  } catch {
    return fail(expected, name, text);
  }
  if ((u.protocol !== "redis:" && u.protocol !== "rediss:") || u.hostname === "") fail(expected, name, text);
  const db = u.pathname === "" || u.pathname === "/" ? 0 : Number(u.pathname.slice(1));
  if (!Number.isInteger(db) || db < 0) fail(`${expected}[/DB] with a database number`, name, text);
  const port = u.port === "" ? 6379 : Number(u.port);
  const shown = new URL(u.href);
  shown.password = "";
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return {
    url: shown.href.replace(/\/$/, ""),
    host,
    port,
    connection: {
      host,
      port,
      db,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === "rediss:" ? {} : undefined,
      // Retry every second at most, so a restarted Redis is found again quickly.
      retryStrategy: (times: number) => Math.min(200 * times, 1000),
    },
  };
}

export class QueueUnreachableError extends VaeguardError {}

/** "cannot reach Redis at redis://h:p (ECONNREFUSED)". */
export function unreachable(target: RedisTarget, cause: unknown, what = "cannot reach"): QueueUnreachableError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const detail = code ?? (cause instanceof Error ? cause.message.split("\n")[0] : String(cause ?? "no answer"));
  return new QueueUnreachableError(`${what} Redis at ${target.url} (${detail})`, { cause });
}

/** Wait for `ready` to resolve, or fail with one line after `timeoutMs`. */
export async function readyWithin<T>(
  target: RedisTarget,
  ready: Promise<T>,
  timeoutMs: number,
  lastError: () => unknown,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(unreachable(target, lastError() ?? `no answer in ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([ready, timeout]);
  } catch (e) {
    if (e instanceof QueueUnreachableError) throw e;
    throw unreachable(target, e);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether something answers on the server's port, before BullMQ connects: a
 * BullMQ connection that never became ready cannot be closed, and its retries
 * would keep the process alive.
 */
export async function probe(target: RedisTarget, timeoutMs = 5000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port });
    const done = (e?: unknown) => {
      socket.destroy();
      if (e === undefined) resolve();
      else reject(unreachable(target, e));
    };
    socket.setTimeout(timeoutMs, () => done(`no answer in ${timeoutMs / 1000} s`));
    socket.once("error", (e) => done(e));
    socket.once("connect", () => done());
  });
}
