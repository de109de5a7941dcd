/**
 * A defense under another table name: the paper calls its ensemble of patch
 * VAEs "Ensembled" and vaeguard's tables "Ensemble", where the spec's own name
 * lists every member. Same object behind it: same outputs, gradients, randomness.
 */
import type { Tensor } from "../core/tensor.js";
import type { Defense, GradientKind } from "./types.js";

class TitledDefense implements Defense {
  readonly randomized: boolean;
  readonly gradient: GradientKind;

  constructor(
    readonly inner: Defense,
    readonly name: string,
  ) {
    this.randomized = inner.randomized;
    this.gradient = inner.gradient;
  }

  apply(x: Tensor): Promise<Tensor> {
    return this.inner.apply(x);
  }

  attackView(x: Tensor): Promise<Tensor> {
    return this.inner.attackView(x);
  }

  describe(): Record<string, number | string | boolean> {
    return { ...this.inner.describe(), title: this.name };
  }
}

/** `defense` named `title` in tables (itself when the title is its name already). */
export function titled(defense: Defense, title: string | undefined): Defense {
  return title === undefined || title === defense.name ? defense : new TitledDefense(defense, title);
}

/** The defense behind a table name (itself when it has none of its own). */
export function innerOf(defense: Defense): Defense {
  return defense instanceof TitledDefense ? defense.inner : defense;
}
