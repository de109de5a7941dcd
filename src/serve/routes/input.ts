/**
 * Reading images from a request: raw bytes (Content-Type image/png,
 * image/jpeg or image/webp) for one image, or JSON `{"images": [base64, ...]}`
 * for a batch. Everything else about a request comes from its query string
 * (raw bodies) or the JSON fields (batches).
 */
import type { FastifyRequest } from "fastify";
import { badRequest } from "../errors.js";
import { fromBase64 } from "../images.js";
import type { ServeContext } from "../context.js";

export interface ImageInput {
  /** The image files, undecoded. */
  files: { bytes: Buffer; what: string }[];
  /** True when the request was a JSON batch (the reply is then JSON too). */
  batch: boolean;
  /** Settings: the query string for raw bodies, the other JSON fields for batches. */
  fields: Record<string, unknown>;
}

export function readImageInput(request: FastifyRequest, ctx: ServeContext, allowed: readonly string[]): ImageInput {
  const body = request.body;
  const query = (request.query ?? {}) as Record<string, unknown>;
  if (Buffer.isBuffer(body)) {
    checkKeys(query, allowed, "query parameter");
    return { files: [{ bytes: body, what: "the request body" }], batch: false, fields: query };
  }
  if (body === undefined || body === null) {
    throw badRequest(
      "empty_body",
      'The request has no body; send image bytes (image/png, image/jpeg, image/webp) or JSON {"images": [base64, ...]}',
    );
  }
  if (typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("invalid_request", 'The JSON body must be an object {"images": [base64, ...], ...}');
  }
  const { images, ...fields } = body as Record<string, unknown>;
  checkKeys(fields, allowed, "field");
  if (!Array.isArray(images) || images.length === 0) {
    throw badRequest(
      "invalid_request",
      'The JSON body needs "images": a non-empty array of base64 PNG, JPEG or WebP files',
    );
  }
  const max = ctx.limits.maxImagesPerRequest;
  if (images.length > max) {
    throw badRequest("too_many_images", `The request has ${images.length} images; the limit is ${max} per request`);
  }
  return {
    files: images.map((text, i) => ({ bytes: fromBase64(text, `images[${i}]`), what: `images[${i}]` })),
    batch: true,
    fields: { ...query, ...fields },
  };
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], kind: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw badRequest(
        "invalid_request",
        `Unknown ${kind} "${k}"; expected ${allowed.length > 0 ? allowed.join(", ") : "none"}`,
      );
    }
  }
}

/** An optional integer setting from a query string or JSON field. */
export function intField(
  fields: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
  dflt: number,
): number {
  const raw = fields[name];
  if (raw === undefined) return dflt;
  const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw badRequest(
      "invalid_request",
      `Expected integer between ${min} and ${max} for ${name} but received ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

export function oneOfField<T extends string>(
  fields: Record<string, unknown>,
  name: string,
  options: readonly T[],
  dflt: T,
): T {
  const raw = fields[name];
  if (raw === undefined) return dflt;
  if (typeof raw !== "string" || !(options as readonly string[]).includes(raw)) {
    throw badRequest(
      "invalid_request",
      `Expected one of ${options.map((o) => JSON.stringify(o)).join(", ")} for ${name} but received ${JSON.stringify(raw)}`,
    );
  }
  return raw as T;
}
