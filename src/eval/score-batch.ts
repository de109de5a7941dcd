/**
 * One batch of attacked images scored under the defenses of a cell: correct
 * top-1 counts per defense and scoring pass.
 *
 * An ensemble whose members are all columns of the same cell (by name,
 * listed before it) is scored on the pixel average of those columns' outputs
 * of the same pass: the paper's "Ensembled" column averages the very
 * reconstructions its VAE columns were scored on, and drawing them again would
 * double the cost of every VAE column on 299x299 images. Any other defense,
 * an ensemble of defenses the cell does not score included, is applied as it is.
 */
import { dispose, keep, tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { EnsembleDefense } from "../defenses/ensemble.js";
import { correctPerPass, type FirstPassHook } from "../defenses/scoring.js";
import { innerOf } from "../defenses/titled.js";
import type { Defense } from "../defenses/types.js";
import type { ImageClassifier } from "../models/classifiers.js";

/** The ensemble columns scored from their members' outputs: ensemble name -> member names. */
export function reusedEnsembles(defenses: readonly Defense[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  defenses.forEach((d, i) => {
    const inner = innerOf(d);
    if (!(inner instanceof EnsembleDefense)) return;
    const before = new Set(defenses.slice(0, i).map((x) => x.name));
    const members = inner.members.map((m) => m.name);
    if (members.every((m) => before.has(m))) out.set(d.name, members);
  });
  return out;
}

/** `d` as a defense whose output is `images` (one pass of an ensemble's average). */
function fixedOutput(d: Defense, images: Tensor): Defense {
  return {
    name: d.name,
    randomized: false,
    gradient: d.gradient,
    apply: async () => images.clone(),
    attackView: async () => images.clone(),
    describe: () => d.describe(),
  };
}

interface Batch {
  classifier: ImageClassifier;
  adv: Tensor;
  y: Tensor;
  passes: number;
  /** Sees the first pass's purified images and predictions of a defense (grids, kept predictions). */
  firstPass: (d: Defense) => FirstPassHook | undefined;
}

/** An ensemble's counts from its members' kept outputs: pass p averages each member's pass p (its only one if deterministic). */
async function averageCounts(b: Batch, d: Defense, members: string[], kept: Map<string, Tensor[]>): Promise<number[]> {
  const counts: number[] = [];
  for (let p = 0; p < (d.randomized ? b.passes : 1); p++) {
    const outs = members.map((m) => kept.get(m)!);
    const mean = tidy(() =>
      outs
        .map((o) => o[Math.min(p, o.length - 1)])
        .reduce((a, o) => a.add(o))
        .div(members.length),
    );
    try {
      const hook = p === 0 ? b.firstPass(d) : undefined;
      counts.push(...(await correctPerPass(fixedOutput(d, mean), b.classifier, b.adv, b.y, 1, hook)));
    } finally {
      mean.dispose();
    }
  }
  return counts;
}

/** Correct counts per defense name and pass on one batch. */
export async function scoreBatch(b: Batch, defenses: readonly Defense[]): Promise<Record<string, number[]>> {
  const reuse = reusedEnsembles(defenses);
  const wanted = new Set([...reuse.values()].flat());
  // Member outputs per pass, kept past correctPerPass's scopes until the batch is scored.
  const kept = new Map<string, Tensor[]>();
  const correct: Record<string, number[]> = {};
  try {
    for (const d of defenses) {
      const members = reuse.get(d.name);
      if (members) {
        correct[d.name] = await averageCounts(b, d, members, kept);
        continue;
      }
      const keepOutput = (_p: number, purified: Tensor) => {
        kept.set(d.name, [...(kept.get(d.name) ?? []), keep(purified.clone())]);
      };
      const onPass = wanted.has(d.name) ? keepOutput : undefined;
      correct[d.name] = await correctPerPass(d, b.classifier, b.adv, b.y, b.passes, b.firstPass(d), onPass);
    }
  } finally {
    dispose([...kept.values()]);
  }
  return correct;
}
