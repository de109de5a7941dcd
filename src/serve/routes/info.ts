/** GET /healthz, GET /v1/models, GET /metrics (Prometheus text format). */
import type { FastifyInstance } from "fastify";
import { ATTACK_DESCRIPTIONS, ATTACK_NAMES } from "../../attacks/index.js";
import type { ServeContext } from "../context.js";
import { fixedShape } from "../models.js";

export function registerInfo(app: FastifyInstance, ctx: ServeContext): void {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/v1/models", async () => {
    const clf = ctx.models.classifier;
    return {
      classifier: {
        inputShape: clf.inputShape,
        numClasses: clf.numClasses,
        classNames: ctx.models.classNames,
      },
      sources: ctx.models.sources,
      defenses: ctx.models.defenses.map((d) => ({
        id: d.id,
        name: d.defense.name,
        randomized: d.defense.randomized,
        gradient: d.defense.gradient,
        inputShape: fixedShape(d.defense) ?? null,
        parameters: d.defense.describe(),
      })),
      attack: {
        enabled: ctx.attack.enabled,
        attacks: ATTACK_NAMES.map((name) => ({ name, description: ATTACK_DESCRIPTIONS[name] })),
        limits: {
          maxSteps: ctx.attack.maxSteps,
          maxQueries: ctx.attack.maxQueries,
          maxRestarts: ctx.attack.maxRestarts,
          maxEot: ctx.attack.maxEot,
        },
      },
      limits: ctx.limits,
      batching: {
        maxBatchSize: ctx.batcher.options.maxBatchSize,
        windowMs: ctx.batcher.options.windowMs,
        concurrency: ctx.batcher.options.concurrency,
        queueLimit: ctx.batcher.options.queueLimit,
      },
      samples: ctx.samples ? { name: ctx.samples.name, count: ctx.samples.items.length } : null,
      results: ctx.results !== undefined,
    };
  });

  app.get("/metrics", async (_request, reply) => {
    reply.type(ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
