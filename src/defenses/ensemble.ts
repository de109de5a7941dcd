/**
 * Ensemble averaging (Luo & Pfister 2018, section 6, the "Ensembled" column of
 * Tables 6 and 7): the pixels of several defenses' outputs are averaged.
 *
 * The attack view averages the members' attack views, so the gradient is
 * exact when every member's is, and otherwise exact through the
 * differentiable members and BPDA through the others. Random when any member
 * is. Input and output as the members'.
 */
import { iterateAsync, tidyAsync } from "../core/engine.js";
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";
import { checkImages } from "./common.js";
import type { Defense, GradientKind } from "./types.js";

const PARAMS = {
  name: {
    type: "string",
    inSpec: false,
    defaultText: "Ensemble(<member names joined by ' + '>)",
    doc: "name for tables",
  },
} as const satisfies Schema;

export type EnsembleOptions = OptionsOf<typeof PARAMS>;

export class EnsembleDefense implements Defense {
  readonly name: string;
  readonly randomized: boolean;
  readonly gradient: GradientKind;
  readonly members: readonly Defense[];

  constructor(members: Defense[], options: EnsembleOptions = {}) {
    const o = readOptions("the ensemble defense", PARAMS, options);
    if (!Array.isArray(members) || members.length === 0) fail("non-empty array of defenses", "members", members);
    for (const [i, m] of members.entries()) {
      if (typeof m !== "object" || m === null || typeof m.apply !== "function" || typeof m.attackView !== "function") {
        fail("a defense", `members[${i}]`, m);
      }
    }
    this.members = [...members];
    this.name = o.name ?? `Ensemble(${members.map((m) => m.name).join(" + ")})`;
    this.randomized = members.some((m) => m.randomized);
    const kinds = new Set(members.map((m) => m.gradient));
    if (kinds.size === 1) this.gradient = members[0].gradient;
    else if (kinds.has("exact")) this.gradient = "bpda-mixed";
    else this.gradient = "bpda-identity";
  }

  /** The mean of the members' outputs, summed one member at a time (only one output alive at once). */
  private average(x: Tensor, view: (d: Defense) => Promise<Tensor>): Promise<Tensor> {
    checkImages(x, this.name);
    return tidyAsync(async () => {
      const [first, ...rest] = this.members;
      const sum = await iterateAsync(await view(first), rest.length, async (total, i) =>
        total.add(await view(rest[i])),
      );
      return sum.div(this.members.length);
    });
  }

  async apply(x: Tensor): Promise<Tensor> {
    return this.average(x, (m) => m.apply(x));
  }

  async attackView(x: Tensor): Promise<Tensor> {
    return this.average(x, (m) => m.attackView(x));
  }

  describe(): Record<string, number | string | boolean> {
    return {
      defense: "ensemble",
      members: this.members.map((m) => m.name).join(" + "),
      size: this.members.length,
      gradient: this.gradient,
    };
  }
}
