/**
 * The attacks by name, for the CLI, config files and sweeps, and the attack
 * API. Each attack declares its parameters once (its definition); spec
 * parsing, option checks, --help and describe() read that declaration.
 */
import { ArgumentError, VaeguardError } from "../core/errors.js";
import { defaultText, describeParams, readOptions, type ValuesOf } from "../core/params.js";
import { canonicalSpec, readSpecArguments, specPairs, splitSpec } from "../core/spec.js";
import { fail } from "../core/validate.js";
import { checkClassifier, type Classifier } from "../models/types.js";
import { FGSM_DEFINITION, type FgsmOptions } from "./fgsm.js";
import { IFGSM_DEFINITION, type IfgsmOptions } from "./ifgsm.js";
import { PGD_DEFINITION, PGD_L2_DEFINITION, type PgdOptions } from "./pgd.js";
import { SQUARE_DEFINITION, type SquareOptions } from "./square.js";
import type { Attack, AttackDefinition } from "./types.js";

export type { Attack, AttackableModel, AttackDefinition, AttackResult, Norm } from "./types.js";
export { FGSM, FGSM_DEFINITION, type FgsmOptions } from "./fgsm.js";
export { IFGSM, IFGSM_DEFINITION, type IfgsmOptions } from "./ifgsm.js";
export { PGD, PGD_DEFINITION, PGD_L2_DEFINITION, type PgdNorm, type PgdOptions } from "./pgd.js";
export { SquareAttack, SQUARE_DEFINITION, squareFraction, type SquareOptions } from "./square.js";
export {
  ATTACK_LOSSES,
  DEFAULT_EOT_BATCH_VALUES,
  attackObjective,
  eotCopiesPerPass,
  eotNoisePerRow,
  evaluateObjective,
  getEotBatchValues,
  lossAndGradient,
  lossGradient,
  setEotBatchValues,
  type AttackLoss,
  type LossAndGradient,
  type LossGradientOptions,
} from "./gradient.js";
export { DEFAULT_RANDOMIZED_EOT_SAMPLES, projectL2, projectLinf, resolveEotSamples } from "./base.js";

export const ATTACK_NAMES = ["fgsm", "ifgsm", "pgd", "pgd-l2", "square"] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

/** Every attack's declaration, by name. */
export const ATTACKS: Readonly<Record<AttackName, AttackDefinition>> = {
  fgsm: FGSM_DEFINITION as unknown as AttackDefinition,
  ifgsm: IFGSM_DEFINITION as unknown as AttackDefinition,
  pgd: PGD_DEFINITION as unknown as AttackDefinition,
  "pgd-l2": PGD_L2_DEFINITION as unknown as AttackDefinition,
  square: SQUARE_DEFINITION as unknown as AttackDefinition,
};

/** Options per attack name; "pgd-l2" is PGD with norm "L2". */
export interface AttackOptionsByName {
  fgsm: FgsmOptions;
  ifgsm: IfgsmOptions;
  pgd: PgdOptions;
  "pgd-l2": Omit<PgdOptions, "norm">;
  square: SquareOptions;
}

/** One line per attack for --help. */
export const ATTACK_DESCRIPTIONS: Readonly<Record<AttackName, string>> = Object.fromEntries(
  ATTACK_NAMES.map((n) => [n, ATTACKS[n].summary]),
) as Record<AttackName, string>;

/** "  fgsm     FGSM (...)" lines, aligned, for --help. */
export function describeAttacks(): string {
  const width = Math.max(...ATTACK_NAMES.map((n) => n.length));
  return ATTACK_NAMES.map((n) => `  ${n.padEnd(width)}  ${ATTACK_DESCRIPTIONS[n]}`).join("\n");
}

/** The spec parameters of every attack, with type, range, default and doc, for --help. */
export function describeAttackParams(): string {
  return ATTACK_NAMES.map((n) => {
    const lines = describeParams(ATTACKS[n].params);
    return `  ${n}${lines.length > 0 ? `\n${lines.join("\n")}` : " (no parameters)"}`;
  }).join("\n");
}

/** The spec parameters of one attack and their types ("int", "number", "bool"). */
export function attackParamTypes(kind: AttackName): Record<string, string> {
  const params = ATTACKS[kind].params;
  return Object.fromEntries(
    Object.entries(params)
      .filter(([, p]) => p.inSpec !== false)
      .map(([name, p]) => [name, p.type]),
  );
}

/** How an attack parameter's default reads ("eps / steps" for the step size of I-FGSM). */
export function attackParamDefault(kind: AttackName, param: string): string | undefined {
  const p = ATTACKS[kind].params[param];
  return p === undefined ? undefined : defaultText(p);
}

export function isAttackName(name: unknown): name is AttackName {
  return typeof name === "string" && (ATTACK_NAMES as readonly string[]).includes(name);
}

/** Build an attack by name with its options (eps is required for every attack). */
export function createAttack<N extends AttackName>(name: N, model: Classifier, options: AttackOptionsByName[N]): Attack;
export function createAttack(name: string, model: Classifier, options: unknown): Attack;
export function createAttack(name: string, model: Classifier, options: unknown): Attack {
  if (!isAttackName(name)) {
    throw new ArgumentError(
      `Expected one of ${ATTACK_NAMES.map((n) => JSON.stringify(n)).join(", ")} for attack but received ${JSON.stringify(name)}`,
    );
  }
  checkClassifier(model, name);
  return ATTACKS[name].create(model, options);
}

/**
 * The checked options of an attack without a model (a config or a report
 * needs them before any model is loaded): eps defaults to a budget inside
 * every range, EOT samples to 1.
 */
export function attackValues(
  kind: AttackName,
  options: Record<string, unknown>,
): ValuesOf<(typeof ATTACKS)[AttackName]["params"]> {
  const def = ATTACKS[kind];
  return readOptions(def.title, def.params, { eps: def.exampleEps, ...options });
}

/** describe() of an attack with these options, without a model (EOT samples 1 unless given). */
export function describeAttack(
  kind: AttackName,
  options: Record<string, unknown>,
): Record<string, number | string | boolean> {
  return ATTACKS[kind].describe(attackValues(kind, options));
}

/** One attack of an evaluation: which, with what parameters, its canonical spec and its name in tables. */
export interface AttackChoice {
  kind: AttackName;
  /** Parameters given in the spec, by their canonical names (defaults are the attack's). */
  params: Record<string, number | boolean>;
  /** Canonical spec, e.g. "pgd:steps=40:restarts=2": same settings, same text. */
  spec: string;
  /** Name in tables: the attack's own name with its main parameters, e.g. "PGD(40)x2". */
  name: string;
}

/** The kind of an attack spec or entry, or an error naming it and `label`. */
export function checkAttackKind(raw: string, label: string): AttackName {
  const kind = raw.trim().toLowerCase();
  if (!isAttackName(kind)) {
    throw new ArgumentError(`Unknown attack "${raw}" in ${label}; expected one of ${ATTACK_NAMES.join(", ")}`);
  }
  return kind;
}

/**
 * An attack choice from [key, value] pairs (a spec's arguments, or a config
 * file's object): types checked here, ranges and combinations by the
 * attack's own declaration, every message naming `label`.
 */
export function attackChoice(
  kind: AttackName,
  given: readonly (readonly [string | undefined, unknown])[],
  label: string,
): AttackChoice {
  const params = readSpecArguments(ATTACKS[kind].params, given, { kind, label }) as Record<string, number | boolean>;
  let name: string;
  try {
    name = ATTACKS[kind].label(attackValues(kind, params));
  } catch (e) {
    if (e instanceof VaeguardError) throw new ArgumentError(`${e.message} (in ${label})`, { cause: e });
    throw e;
  }
  const spec = canonicalSpec(kind, ATTACKS[kind].params, params);
  const ordered = Object.keys(ATTACKS[kind].params).filter((k) => k in params);
  return { kind, params: Object.fromEntries(ordered.map((k) => [k, params[k]])), spec, name };
}

/** Parse an attack spec, NAME[:KEY=VALUE...] (the grammar of core/spec.ts). */
export function parseAttackSpec(text: string): AttackChoice {
  if (typeof text !== "string" || text.trim() === "") fail("non-empty attack spec", "attack", text);
  const label = `attack spec "${text}"`;
  const split = splitSpec(text);
  const head = (text.includes(":") ? text.slice(0, text.indexOf(":")) : text).trim();
  return attackChoice(checkAttackKind(head, label), specPairs(split.args, label), label);
}
