/**
 * POST /v1/attack (for the demo and for teaching; off with --no-attack): an
 * image (base64, or a test sample by index), its true label, an attack spec
 * (the evaluate syntax, e.g. "pgd:steps=20"), epsilon and a mode. Returns the
 * adversarial image and what the classifier says about it, and the purified
 * adversarial image and what the defended system says, for gray-box (the
 * attacker does not know the defense, the paper's setting) and adaptive (the
 * attacker attacks defense + classifier: exact gradients, BPDA, EOT) side by side.
 */
import type { FastifyInstance } from "fastify";
import { parseAttackSpec } from "../../eval/config.js";
import type { DefenseView } from "../../defenses/index.js";
import { findDefense, type ServeContext } from "../context.js";
import { topK, type AttackJob } from "../compute.js";
import { HttpError, badRequest } from "../errors.js";
import { decodeImage, encodePng, fromBase64, type PixelImage } from "../images.js";
import { classifyImages, describePredictions } from "./classify.js";

interface AttackBody {
  image?: string;
  sample?: number;
  label?: number;
  attack?: string;
  eps: number;
  mode?: DefenseView | "both";
  defense?: string;
  eot?: number;
  topk?: number;
}

const SCHEMA = {
  body: {
    type: "object",
    additionalProperties: false,
    required: ["eps"],
    properties: {
      image: { type: "string", minLength: 1 },
      sample: { type: "integer", minimum: 0 },
      label: { type: "integer", minimum: 0 },
      attack: { type: "string", minLength: 1, maxLength: 200 },
      eps: { type: "number", minimum: 0 },
      mode: { type: "string", enum: ["gray-box", "adaptive", "both"] },
      defense: { type: "string", maxLength: 200 },
      eot: { type: "integer", minimum: 1 },
      topk: { type: "integer", minimum: 1 },
    },
  },
} as const;

function checkCost(ctx: ServeContext, params: Record<string, number | boolean>, eot: number | undefined): void {
  const caps: [string, unknown, number][] = [
    ["steps", params.steps, ctx.attack.maxSteps],
    ["queries", params.queries, ctx.attack.maxQueries],
    ["restarts", params.restarts, ctx.attack.maxRestarts],
    ["eot", eot, ctx.attack.maxEot],
  ];
  for (const [name, value, max] of caps) {
    if (typeof value === "number" && value > max) {
      throw badRequest("attack_too_expensive", `${name} ${value} is more than this server allows (${max})`);
    }
  }
}

/** Refusals that need no model work: the endpoint switched off, an ambiguous image, a label out of range. */
function checkRequest(ctx: ServeContext, b: AttackBody): void {
  if (!ctx.attack.enabled) {
    throw new HttpError(403, "attack_disabled", "The attack endpoint is switched off on this server");
  }
  const numClasses = ctx.models.classifier.numClasses;
  if ((b.image === undefined) === (b.sample === undefined)) {
    throw badRequest("invalid_request", 'Give exactly one of "image" (base64) and "sample" (a test image index)');
  }
  if (b.label !== undefined && b.label >= numClasses) {
    throw badRequest(
      "invalid_request",
      `Expected integer between 0 and ${numClasses - 1} for label but received ${b.label}`,
    );
  }
}

type LabelSource = "request" | "sample" | "prediction";

/** The image to attack: a served test sample (which brings its own label) or the uploaded bytes. */
async function resolveImage(
  ctx: ServeContext,
  b: AttackBody,
): Promise<{ image: PixelImage; label: number | undefined; labelSource: LabelSource }> {
  let label = b.label;
  let labelSource: LabelSource = "request";
  if (b.sample !== undefined) {
    const samples = ctx.samples;
    if (!samples || b.sample >= samples.items.length) {
      throw badRequest(
        "unknown_sample",
        `No test sample ${b.sample}; this server has ${samples?.items.length ?? 0} (GET /v1/samples)`,
      );
    }
    const image = samples.items[b.sample].image;
    if (label === undefined) {
      label = samples.items[b.sample].label;
      labelSource = "sample";
    }
    return { image, label, labelSource };
  }
  const [c, h, w] = ctx.models.classifier.inputShape;
  const image = await decodeImage(fromBase64(b.image, "image"), {
    maxPixels: ctx.limits.maxPixels,
    channels: c as 1 | 3,
    size: [h, w],
    what: "image",
  });
  return { image, label, labelSource };
}

interface AttackPlan {
  choice: ReturnType<typeof parseAttackSpec>;
  eps: number;
  defenseId: string;
  eot: number | undefined;
  k: number;
}

/** One mode's attack, through the batcher (same settings and image shape share a batch), encoded for JSON. */
async function runMode(ctx: ServeContext, plan: AttackPlan, mode: DefenseView, image: PixelImage, label: number) {
  const { choice, eps, defenseId, eot, k } = plan;
  const settings = { choice, eps, mode, defense: defenseId, eot };
  const key = `attack|${choice.spec}|${eps}|${mode}|${defenseId}|${eot ?? ""}|${image.shape.join("x")}`;
  const out = await ctx.batcher.submit(key, { image, label }, (jobs: AttackJob[]) => ctx.runner.attack(settings, jobs));
  return {
    mode,
    adversarial: {
      image: (await encodePng(out.adversarial)).toString("base64"),
      top: topK(out.adversarialProbs, k, ctx.models.classNames),
    },
    purified: {
      image: (await encodePng(out.purified)).toString("base64"),
      top: topK(out.purifiedProbs, k, ctx.models.classNames),
    },
  };
}

async function handleAttack(ctx: ServeContext, b: AttackBody) {
  checkRequest(ctx, b);
  const numClasses = ctx.models.classifier.numClasses;
  const k = Math.min(b.topk ?? 3, numClasses);
  const choice = parseAttackSpec(b.attack ?? "fgsm");
  checkCost(ctx, choice.params, b.eot);
  const served = findDefense(ctx, b.defense);
  const modes: DefenseView[] = b.mode === undefined || b.mode === "both" ? ["gray-box", "adaptive"] : [b.mode];

  const { image, label: given, labelSource: givenSource } = await resolveImage(ctx, b);
  let label = given;
  let labelSource = givenSource;
  const [clean] = await classifyImages(ctx, [image]);
  const servedIndex = ctx.models.defenses.indexOf(served);
  if (label === undefined) {
    // No true label for an uploaded image: attack the classifier's own clean prediction.
    label = topK(clean[0], 1, ctx.models.classNames)[0].label;
    labelSource = "prediction";
  }
  const plan: AttackPlan = { choice, eps: b.eps, defenseId: served.id, eot: b.eot, k };
  const runs = await Promise.all(modes.map((mode) => runMode(ctx, plan, mode, image, label!)));
  return {
    attack: choice.spec,
    attackName: choice.name,
    eps: b.eps,
    defense: served.id,
    defenseName: served.defense.name,
    label,
    className: ctx.models.classNames[label],
    labelSource,
    original: {
      image: (await encodePng(image)).toString("base64"),
      undefended: topK(clean[0], k, ctx.models.classNames),
      defended: topK(clean[servedIndex], k, ctx.models.classNames),
    },
    runs,
    predictions: describePredictions(ctx, clean, k),
  };
}

export function registerAttack(app: FastifyInstance, ctx: ServeContext): void {
  app.post<{ Body: AttackBody }>("/v1/attack", { schema: SCHEMA }, async (request) => handleAttack(ctx, request.body));
}
