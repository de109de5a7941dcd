/**
 * No defense: the identity. The baseline column ("No Def" in the paper's tables).
 * apply and attackView return new tensors (clones), so callers always own what
 * a defense hands back.
 */
import { noGrad } from "../core/engine.js";
import { readOptions, type Schema } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import { checkImages } from "./common.js";
import type { Defense, DefenseDefinition, GradientKind } from "./types.js";

const PARAMS = {} as const satisfies Schema;

export const NONE_DEFINITION: DefenseDefinition = {
  kind: "none",
  description: "no defense: the classifier sees the image as it is",
  params: PARAMS,
  build: () => new NoDefense(),
};

export class NoDefense implements Defense {
  readonly name = "No defense";
  readonly randomized = false;
  readonly gradient: GradientKind = "exact";

  constructor(options: Record<string, never> = {}) {
    readOptions("no defense", PARAMS, options);
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return noGrad(() => x.clone());
  }

  async attackView(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return x.clone();
  }

  describe(): Record<string, number | string | boolean> {
    return { defense: "none" };
  }
}
