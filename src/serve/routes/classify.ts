/**
 * POST /v1/classify: one image (raw bytes) or a batch (JSON); the top-k
 * classes and probabilities of the classifier without a defense ("none")
 * and behind each loaded defense. Images are resized to the classifier's
 * input (letterboxed, aspect kept).
 */
import type { FastifyInstance } from "fastify";
import type { ServeContext } from "../context.js";
import { topK, type Prediction } from "../compute.js";
import { decodeImage, type PixelImage } from "../images.js";
import { intField, readImageInput } from "./input.js";

export interface DefensePredictions {
  defense: string;
  name: string;
  top: Prediction[];
}

/** Probabilities behind every served defense for model-sized images, through the batcher. */
export function classifyImages(ctx: ServeContext, images: PixelImage[]): Promise<Float32Array[][]> {
  return ctx.batcher.submitAll("classify", images, (batch: PixelImage[]) => ctx.runner.classify(batch));
}

export function describePredictions(ctx: ServeContext, probs: Float32Array[], k: number): DefensePredictions[] {
  return ctx.models.defenses.map((d, i) => ({
    defense: d.id,
    name: d.defense.name,
    top: topK(probs[i], k, ctx.models.classNames),
  }));
}

export function registerClassify(app: FastifyInstance, ctx: ServeContext): void {
  app.post("/v1/classify", async (request) => {
    const input = readImageInput(request, ctx, ["topk"]);
    const numClasses = ctx.models.classifier.numClasses;
    const k = intField(input.fields, "topk", 1, numClasses, Math.min(3, numClasses));
    const [c, h, w] = ctx.models.classifier.inputShape;
    const images = await Promise.all(
      input.files.map((f) =>
        decodeImage(f.bytes, { maxPixels: ctx.limits.maxPixels, channels: c as 1 | 3, size: [h, w], what: f.what }),
      ),
    );
    const probs = await classifyImages(ctx, images);
    const results = probs.map((p) => ({ predictions: describePredictions(ctx, p, k) }));
    return input.batch ? { results } : results[0];
  });
}
