/** The attacks by name, for the CLI and sweeps, and the attack API. */
import { ArgumentError } from "../core/errors.js";
import { checkModel } from "./base.js";
import { FGSM, type FgsmOptions } from "./fgsm.js";
import { IFGSM, type IfgsmOptions } from "./ifgsm.js";
import { PGD, type PgdOptions } from "./pgd.js";
import { SquareAttack, type SquareOptions } from "./square.js";
import type { Attack, AttackableModel } from "./types.js";

export type { Attack, AttackableModel, AttackResult, Norm } from "./types.js";
export { FGSM, type FgsmOptions } from "./fgsm.js";
export { IFGSM, type IfgsmOptions } from "./ifgsm.js";
export { PGD, type PgdNorm, type PgdOptions } from "./pgd.js";
export { SquareAttack, squareFraction, type SquareOptions } from "./square.js";
export {
  ATTACK_LOSSES,
  attackObjective,
  evaluateObjective,
  lossAndGradient,
  lossGradient,
  type AttackLoss,
  type LossAndGradient,
  type LossGradientOptions,
} from "./gradient.js";
export { DEFAULT_RANDOMIZED_EOT_SAMPLES, projectL2, projectLinf, resolveEotSamples } from "./base.js";

export const ATTACK_NAMES = ["fgsm", "ifgsm", "pgd", "pgd-l2", "square"] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

/** Options per attack name; "pgd-l2" is PGD with norm "L2". */
export interface AttackOptionsByName {
  fgsm: FgsmOptions;
  ifgsm: IfgsmOptions;
  pgd: PgdOptions;
  "pgd-l2": Omit<PgdOptions, "norm">;
  square: SquareOptions;
}

/** One line per attack for --help. */
export const ATTACK_DESCRIPTIONS: Readonly<Record<AttackName, string>> = {
  fgsm: "FGSM (Goodfellow et al. 2014): one L-inf step of eps * sign(gradient)",
  ifgsm: "I-FGSM (Kurakin et al. 2016): 10 L-inf steps of eps/10, as in Luo & Pfister 2018",
  pgd: "PGD (Madry et al. 2017), L-inf: random start, 40 steps of 2.5*eps/40, optional restarts",
  "pgd-l2": "PGD (Madry et al. 2017), L2: random start, 40 normalised-gradient steps, per-image L2 ball",
  square: "Square Attack (Andriushchenko et al. 2020), L-inf, gradient-free random search (1000 queries)",
};

/** "  fgsm     FGSM (...)" lines, aligned, for --help. */
export function describeAttacks(): string {
  const width = Math.max(...ATTACK_NAMES.map((n) => n.length));
  return ATTACK_NAMES.map((n) => `  ${n.padEnd(width)}  ${ATTACK_DESCRIPTIONS[n]}`).join("\n");
}

export function isAttackName(name: unknown): name is AttackName {
  return typeof name === "string" && (ATTACK_NAMES as readonly string[]).includes(name);
}

/** Build an attack by name with its options (eps is required for every attack). */
export function createAttack<N extends AttackName>(
  name: N,
  model: AttackableModel,
  options: AttackOptionsByName[N],
): Attack;
export function createAttack(name: string, model: AttackableModel, options: unknown): Attack;
export function createAttack(name: string, model: AttackableModel, options: unknown): Attack {
  if (!isAttackName(name)) {
    throw new ArgumentError(
      `Expected one of ${ATTACK_NAMES.map((n) => JSON.stringify(n)).join(", ")} for attack but received ${JSON.stringify(name)}`,
    );
  }
  checkModel(model, name);
  switch (name) {
    case "fgsm":
      return new FGSM(model, options as FgsmOptions);
    case "ifgsm":
      return new IFGSM(model, options as IfgsmOptions);
    case "pgd":
      return new PGD(model, options as PgdOptions);
    case "pgd-l2": {
      if (
        typeof options === "object" &&
        options !== null &&
        "norm" in options &&
        (options as PgdOptions).norm !== "L2"
      ) {
        throw new ArgumentError(
          `Attack "pgd-l2" is PGD with norm "L2"; use "pgd" for norm ${JSON.stringify((options as PgdOptions).norm)}`,
        );
      }
      return new PGD(model, { ...(options as PgdOptions), norm: "L2" });
    }
    case "square":
      return new SquareAttack(model, options as SquareOptions);
  }
}
