/**
 * The columns and attacks of Tables 6 and 7 as the shared pipeline names
 * them: defense specs (createDefense) on the patch VAEs at hand, the ensemble
 * under the paper's short name, and FGSM and I-FGSM with their epsilon grids.
 */
import { ArgumentError } from "../../core/errors.js";
import { checkNumber } from "../../core/validate.js";
import type { SetupAttack } from "../evaluation.js";
import {
  DEFAULT_FGSM_EPS,
  DEFAULT_IFGSM_EPS,
  QUICK_FGSM_EPS,
  QUICK_IFGSM_EPS,
  VAE_COLUMNS,
  type PatchSize,
} from "./settings.js";

/** The table name of the ensemble column (the paper: "Ensembled"). */
export const ENSEMBLE = "Ensemble";

export type AttackKey = "fgsm" | "ifgsm";
export const ATTACK_TITLES: Record<AttackKey, string> = { fgsm: "FGSM", ifgsm: "I-FGSM" };

/**
 * No defense, JPEG 10, JPEG 23, a VAE column per (patch size, stride) whose
 * VAE was trained, and, with two or more of those, their ensemble: the pixel
 * average of the VAE columns' outputs of the same pass (eval/score-batch.ts).
 */
export function columnSpecs(sizes: readonly PatchSize[]): { defenses: string[]; titles: Record<string, string> } {
  const vaes = VAE_COLUMNS.filter((c) => sizes.includes(c.patchSize)).map((c) => `patchvae:${c.patchSize}/${c.stride}`);
  const defenses = ["none", "jpeg:10", "jpeg:23", ...vaes];
  if (vaes.length < 2) return { defenses, titles: {} };
  const ensemble = `ensemble:${vaes.join("+")}`;
  return { defenses: [...defenses, ensemble], titles: { [ensemble]: ENSEMBLE } };
}

export interface AttackChoices {
  attacks?: AttackKey[];
  fgsmEpsilons?: number[];
  ifgsmEpsilons?: number[];
  ifgsmSteps: number;
  quick: boolean;
}

/** An attack's grid: epsilon 0 (the clean row, shared by both tables), then its epsilons above 0, ascending. */
function grid(attack: AttackKey, eps: readonly number[]): number[] {
  for (const e of eps) checkNumber(e, `${attack} epsilon`, 0, 1);
  return [0, ...[...new Set(eps)].filter((e) => e > 0).sort((a, b) => a - b)];
}

/** FGSM and I-FGSM (ten steps by default), gray-box, each with its own epsilon grid. */
export function tableAttacks(o: AttackChoices): SetupAttack[] {
  const chosen = o.attacks ?? ["fgsm", "ifgsm"];
  const fgsm = grid("fgsm", o.fgsmEpsilons ?? (o.quick ? QUICK_FGSM_EPS : DEFAULT_FGSM_EPS));
  const ifgsm = grid("ifgsm", o.ifgsmEpsilons ?? (o.quick ? QUICK_IFGSM_EPS : DEFAULT_IFGSM_EPS));
  const out: SetupAttack[] = [];
  if (chosen.includes("fgsm") && fgsm.length > 1) out.push({ name: "FGSM", kind: "fgsm", params: {}, epsilons: fgsm });
  if (chosen.includes("ifgsm") && ifgsm.length > 1) {
    out.push({ name: "I-FGSM", kind: "ifgsm", params: { steps: o.ifgsmSteps }, epsilons: ifgsm });
  }
  if (out.length === 0) throw new ArgumentError("No attack to run");
  return out;
}
