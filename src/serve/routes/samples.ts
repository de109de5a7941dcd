/**
 * The page's material: GET /v1/samples (how many test images), GET
 * /v1/samples/:index (one as PNG with its label) and GET /v1/results (the
 * rows of the results file for the accuracy-versus-epsilon plot).
 */
import type { FastifyInstance } from "fastify";
import type { ServeContext } from "../context.js";
import { HttpError } from "../errors.js";
import { encodePng } from "../images.js";

export function registerSamples(app: FastifyInstance, ctx: ServeContext): void {
  app.get("/v1/samples", async () => ({
    name: ctx.samples?.name ?? null,
    count: ctx.samples?.items.length ?? 0,
  }));

  app.get<{ Params: { index: string } }>("/v1/samples/:index", async (request) => {
    const count = ctx.samples?.items.length ?? 0;
    const raw = request.params.index;
    const index = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
    if (!(index < count)) {
      throw new HttpError(
        404,
        "unknown_sample",
        `No test sample ${JSON.stringify(raw)}; this server has ${count}${count > 0 ? ` (0 to ${count - 1})` : ""}`,
      );
    }
    const s = ctx.samples!.items[index];
    return {
      index,
      label: s.label,
      className: ctx.samples!.classNames[s.label],
      image: (await encodePng(s.image)).toString("base64"),
    };
  });

  app.get("/v1/results", async () => {
    if (!ctx.results) {
      throw new HttpError(404, "no_results", "This server was started without a results file (--results)");
    }
    const m = ctx.results.metadata;
    return {
      metadata: { dataset: m.dataset, samples: m.samples, command: m.command, attackParams: m.attackParams },
      rows: ctx.results.rows,
    };
  });
}
