/** Small models, images and gradient helpers for the defense tests. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { enableGrad, enableGradAsync, manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { Tensor, grad, tensor } from "../../src/core/tensor.js";
import { ConvVae } from "../../src/models/vae.js";

/** A small random-weight ConvVae (no training) for images or patches of the given shape. */
export function tinyVae(inputShape: [number, number, number], seed = 0, latentDim = 8): ConvVae {
  manualSeed(seed);
  return new ConvVae({ inputShape, encoder: [{ channels: 4, pool: true }], latentDim });
}

/** Gradient of sum(f(x) * w) with respect to x (x itself is not modified). */
export async function gradOfWeighted(f: (x: Tensor) => Promise<Tensor>, x: Tensor, w: Tensor): Promise<Tensor> {
  const xi = noGrad(() => x.detach()).requiresGrad_(true);
  try {
    const y = await enableGradAsync(() => f(xi));
    try {
      return enableGrad(() => tidy(() => grad(y.mul(w).sum(), [xi])[0]));
    } finally {
      y.dispose();
    }
  } finally {
    xi.dispose();
  }
}

/** Largest |a - b|. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  return noGrad(() => tidy(() => a.sub(b).abs().max().item()));
}

/** [min, max] of a tensor. */
export function range(t: Tensor): [number, number] {
  return noGrad(() => tidy(() => [t.min().item(), t.max().item()] as [number, number]));
}

/** Images are 8-bit CHW bytes, base64-encoded, with their [C, H, W] shape. */
export interface GoldenImage {
  name: string;
  shape: [number, number, number];
  input: string;
  jpeg: Record<string, string>;
}

export interface Golden {
  source: string;
  jpeg: GoldenImage[];
  smoothMore: { shape: [number, number, number]; input: string; output: string };
}

/** The PIL golden values of test/defenses/golden.json (made by make_golden.py). */
export function readGolden(): Golden {
  // Compiled, this module lives in dist/test/defenses/; the JSON stays in test/defenses/.
  const path = fileURLToPath(new URL("../../../test/defenses/golden.json", import.meta.url));
  return JSON.parse(readFileSync(path, "utf8")) as Golden;
}

/** A [1, C, H, W] float tensor in [0, 1] from base64 8-bit CHW bytes. */
export function fromBytes(base64: string, shape: readonly number[]): Tensor {
  const bytes = new Uint8Array(Buffer.from(base64, "base64"));
  return tidy(() =>
    tensor(bytes, [1, ...shape])
      .float()
      .div(255),
  );
}
