/**
 * The web page at /: three files bundled by esbuild at build time
 * (scripts/build-web.mjs) into dist/web, read once at start-up and served
 * from memory with a strict Content-Security-Policy (no inline scripts, no
 * third-party anything).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { HttpError } from "../errors.js";

const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

const CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export function registerWeb(app: FastifyInstance, webDir: string): void {
  const loaded = new Map<string, Buffer>();
  for (const { file } of Object.values(FILES)) {
    const p = join(webDir, file);
    if (existsSync(p)) loaded.set(file, readFileSync(p));
  }
  for (const [route, { file, type }] of Object.entries(FILES)) {
    app.get(route, async (_request, reply) => {
      const body = loaded.get(file);
      if (!body) {
        throw new HttpError(503, "page_not_built", "The web page is not built; run `npm run build:ts`");
      }
      return reply
        .type(type)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-cache")
        .send(body);
    });
  }
}
