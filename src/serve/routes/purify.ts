/**
 * POST /v1/purify: one image (raw bytes) or a batch (JSON), and a defense;
 * the purified image as PNG, or as raw float32 CHW bytes with format=tensor
 * (or Accept: application/octet-stream). A defense built on a VAE works at
 * the VAE's input size; the others (JPEG, patch VAEs, filters) keep the
 * image's own size, so large images go through a patch VAE whole.
 */
import type { FastifyInstance } from "fastify";
import { findDefense, type ServeContext } from "../context.js";
import { decodeImage, encodePng, tensorBytes, type PixelImage } from "../images.js";
import { defenseChannels, fixedShape } from "../models.js";
import { oneOfField, readImageInput } from "./input.js";

export function registerPurify(app: FastifyInstance, ctx: ServeContext): void {
  app.post("/v1/purify", async (request, reply) => {
    const input = readImageInput(request, ctx, ["defense", "format"]);
    const served = findDefense(ctx, input.fields.defense);
    const wantsTensor = (request.headers.accept ?? "").includes("application/octet-stream");
    const format = oneOfField(input.fields, "format", ["png", "tensor"] as const, wantsTensor ? "tensor" : "png");
    const fixed = fixedShape(served.defense);
    const channels = (fixed?.[0] ?? defenseChannels(served.defense) ?? ctx.models.classifier.inputShape[0]) as 1 | 3;
    const images = await Promise.all(
      input.files.map((f) =>
        decodeImage(f.bytes, {
          maxPixels: ctx.limits.maxPixels,
          channels,
          size: fixed ? [fixed[1], fixed[2]] : undefined,
          what: f.what,
        }),
      ),
    );
    // One batch per image shape: images of different sizes cannot share a tensor.
    const purified = await Promise.all(
      images.map((img) =>
        ctx.batcher.submit(`purify|${served.id}|${img.shape.join("x")}`, img, (batch: PixelImage[]) =>
          ctx.runner.purify(served.id, batch),
        ),
      ),
    );
    reply.header("x-defense", served.id);
    if (!input.batch) {
      const img = purified[0];
      if (format === "tensor") {
        return reply
          .type("application/octet-stream")
          .header("x-tensor-shape", img.shape.join(","))
          .header("x-tensor-dtype", "float32")
          .send(tensorBytes(img));
      }
      return reply.type("image/png").send(await encodePng(img));
    }
    if (format === "tensor") {
      return {
        defense: served.id,
        tensors: purified.map((img) => ({
          shape: img.shape,
          dtype: "float32",
          data: tensorBytes(img).toString("base64"),
        })),
      };
    }
    return {
      defense: served.id,
      images: await Promise.all(purified.map(async (img) => (await encodePng(img)).toString("base64"))),
    };
  });
}
