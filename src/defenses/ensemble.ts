/**
 * Ensemble averaging (Luo & Pfister 2018, section 6, the "Ensembled" column of
 * Tables 6 and 7): the pixels of several defenses' outputs are averaged.
 *
 * The attack view averages the members' attack views, so the gradient is
 * exact when every member's is, and otherwise exact through the
 * differentiable members and BPDA through the others. Random when any member
 * is. Input and output as the members'.
 */
import { tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";
import { checkImages, checkOptions } from "./common.js";
import type { Defense, GradientKind } from "./types.js";

export interface EnsembleOptions {
  /** Name for tables; default "Ensemble(<member names joined by ' + '>)". */
  name?: string;
}

export class EnsembleDefense implements Defense {
  readonly name: string;
  readonly randomized: boolean;
  readonly gradient: GradientKind;
  readonly members: readonly Defense[];

  constructor(members: Defense[], options: EnsembleOptions = {}) {
    const o = checkOptions("the ensemble defense", options, ["name"]);
    if (!Array.isArray(members) || members.length === 0) fail("non-empty array of defenses", "members", members);
    for (const [i, m] of members.entries()) {
      if (typeof m !== "object" || m === null || typeof m.apply !== "function" || typeof m.attackView !== "function") {
        fail("a defense", `members[${i}]`, m);
      }
    }
    if (o.name !== undefined && (typeof o.name !== "string" || o.name === "")) fail("non-empty string", "name", o.name);
    this.members = [...members];
    this.name = (o.name as string | undefined) ?? `Ensemble(${members.map((m) => m.name).join(" + ")})`;
    this.randomized = members.some((m) => m.randomized);
    const kinds = new Set(members.map((m) => m.gradient));
    if (kinds.size === 1) this.gradient = members[0].gradient;
    else if (kinds.has("exact")) this.gradient = "bpda-mixed";
    else this.gradient = "bpda-identity";
  }

  /** Sum the members' outputs one at a time (only one member's output alive at once), then divide. */
  private async average(x: Tensor, view: (d: Defense) => Promise<Tensor>): Promise<Tensor> {
    checkImages(x, this.name);
    let sum: Tensor | null = null;
    try {
      for (const m of this.members) {
        const y = await view(m);
        if (sum === null) {
          sum = y;
        } else {
          const prev: Tensor = sum;
          sum = tidy(() => prev.add(y));
          prev.dispose();
          y.dispose();
        }
      }
      const total = sum!;
      sum = null;
      const out = tidy(() => total.div(this.members.length));
      total.dispose();
      return out;
    } catch (e) {
      sum?.dispose();
      throw e;
    }
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
