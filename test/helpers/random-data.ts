/** Small data sets of random pixels and labels, for tests that need a sweep's shape but no real images. */
import { tidy } from "../../src/core/engine.js";
import { rand, randint } from "../../src/core/tensor.js";
import type { ImageDataset } from "../../src/data/index.js";

/** n random 28x28 grey images with labels 0-9 (draws from libtorch's generator: seed it first). */
export function randomMnistLike(n: number): ImageDataset {
  return tidy(() => ({
    images: rand([n, 1, 28, 28]),
    labels: randint(0, 10, [n]),
    classNames: Array.from({ length: 10 }, (_, i) => String(i)),
    name: "random",
    source: "random test images",
  }));
}
