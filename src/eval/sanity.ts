/**
 * Sanity checks on evaluation results, as pure functions over ResultRow[], so
 * a report can say when its own numbers should not be trusted:
 *
 * (a) decay: in adaptive mode a strong white-box attack (PGD) should drive
 *     accuracy toward zero as epsilon grows; a defense still above half its
 *     clean accuracy at the largest epsilon suggests masked gradients (or an
 *     epsilon grid that stops too early);
 * (b) black-box vs white-box: the gradient-free Square Attack should not beat
 *     the best gradient attack at the same epsilon; where it does, the
 *     gradient the attacks follow is masked for that defense;
 * (c) randomized defenses: their numbers are means over forward passes;
 * (d) convergence: PGD with twice the steps and restarts should not move the
 *     accuracy by more than a tolerance (else the attack had not converged and
 *     the number overstates robustness);
 * (e) monotone loss: the loss PGD ascends should rise along its steps; a loss
 *     that stalls or falls means the gradient does not point uphill (masked).
 * (d) and (e) take the numbers of a worst-case evaluation (src/eval/worst-case.ts).
 *
 * Also the "gray-box vs adaptive" table that puts the two modes side by side.
 */
import type { AttackName } from "../attacks/index.js";
import { defensesOf, formatEpsilon, type AttackMode, type ResultRow } from "./results.js";

export type SanityCheck = "decay" | "black-box" | "randomized" | "convergence" | "monotone";

export interface SanityFinding {
  check: SanityCheck;
  /** "warning": the numbers may overstate robustness; "info": a check that passed, or a fact to state. */
  level: "warning" | "info";
  attack?: string;
  mode?: AttackMode;
  defense?: string;
  epsilon?: number;
  message: string;
}

export interface KindOptions {
  /** Which attack each row's attack name is; default inferred from the name ("PGD(40)" -> "pgd"). */
  kinds?: Readonly<Record<string, AttackName>>;
}

/** The attack kind behind a table name: given, or inferred from the names attacks give themselves. */
export function attackKind(name: string, kinds?: Readonly<Record<string, AttackName>>): AttackName | undefined {
  if (kinds?.[name] !== undefined) return kinds[name];
  if (/^square/i.test(name)) return "square";
  if (/^pgd-l2/i.test(name)) return "pgd-l2";
  if (/^pgd/i.test(name)) return "pgd";
  if (/^i-fgsm/i.test(name)) return "ifgsm";
  if (/^fgsm/i.test(name)) return "fgsm";
  return undefined;
}

const fmt = (v: number) => v.toFixed(3);

function byEpsilon(rows: readonly ResultRow[]): ResultRow[] {
  return [...rows].sort((a, b) => a.epsilon - b.epsilon);
}

export interface DecayOptions extends KindOptions {
  /** Flag when accuracy at the largest epsilon exceeds this fraction of the clean accuracy (default 0.5). */
  ratio?: number;
  /** Attack kinds the check applies to (default PGD in L-inf and L2). */
  appliesTo?: readonly AttackName[];
}

/**
 * (a) In adaptive mode, each defense's accuracy under PGD at the largest
 * epsilon should be at most `ratio` times its clean accuracy (its accuracy at
 * epsilon 0 in the same sweep).
 */
export function checkDecay(rows: readonly ResultRow[], options: DecayOptions = {}): SanityFinding[] {
  const ratio = options.ratio ?? 0.5;
  const applies = options.appliesTo ?? ["pgd", "pgd-l2"];
  const findings: SanityFinding[] = [];
  const attacks = [...new Set(rows.filter((r) => r.mode === "adaptive").map((r) => r.attack))];
  for (const attack of attacks) {
    const kind = attackKind(attack, options.kinds);
    if (kind === undefined || !applies.includes(kind)) continue;
    const sweep = byEpsilon(rows.filter((r) => r.mode === "adaptive" && r.attack === attack));
    const last = sweep.at(-1)!;
    if (last.epsilon === 0) continue;
    const clean = sweep.find((r) => r.epsilon === 0) ?? rows.find((r) => r.epsilon === 0 && r.mode === "adaptive");
    for (const defense of Object.keys(last.accuracy)) {
      const atEnd = last.accuracy[defense];
      const base = clean?.accuracy[defense];
      const where = `${attack} (adaptive), ${defense}`;
      const decay = (level: SanityFinding["level"], message: string) =>
        findings.push({ check: "decay", level, attack, mode: "adaptive", defense, epsilon: last.epsilon, message });
      if (base === undefined) {
        decay(
          "info",
          `${where}: no epsilon-0 row, so the fall of accuracy toward zero was not checked (accuracy ${fmt(atEnd)} at epsilon ${formatEpsilon(last.epsilon)}).`,
        );
      } else if (atEnd > ratio * base) {
        decay(
          "warning",
          `${where}: accuracy ${fmt(atEnd)} at the largest epsilon ${formatEpsilon(last.epsilon)} is still above ` +
            `${ratio} of its clean accuracy ${fmt(base)}: the gradient may be masked or epsilon too small.`,
        );
      } else {
        decay(
          "info",
          `${where}: accuracy falls from ${fmt(base)} to ${fmt(atEnd)} at epsilon ${formatEpsilon(last.epsilon)}.`,
        );
      }
    }
  }
  return findings;
}

export interface BlackBoxOptions extends KindOptions {
  /** Square must beat the best gradient attack by more than this to be flagged (default 0). */
  margin?: number;
}

/** Gradient attacks whose budget is the same L-inf ball as the Square Attack's. */
const LINF_GRADIENT: readonly AttackName[] = ["fgsm", "ifgsm", "pgd"];

/**
 * (b) At each (mode, epsilon > 0, defense), the gradient-free Square Attack
 * should leave at least the accuracy of the strongest L-inf gradient attack.
 * Lower accuracy under Square means the gradient is masked for that defense.
 */
export function checkBlackBox(rows: readonly ResultRow[], options: BlackBoxOptions = {}): SanityFinding[] {
  const margin = options.margin ?? 0;
  const findings: SanityFinding[] = [];
  const points = new Map<string, { mode: AttackMode; epsilon: number; rows: ResultRow[] }>();
  for (const r of rows) {
    if (r.epsilon === 0) continue;
    const key = `${r.mode}|${r.epsilon}`;
    if (!points.has(key)) points.set(key, { mode: r.mode, epsilon: r.epsilon, rows: [] });
    points.get(key)!.rows.push(r);
  }
  for (const { mode, epsilon, rows: at } of points.values()) {
    const blackBox = at.filter((r) => attackKind(r.attack, options.kinds) === "square");
    const whiteBox = at.filter((r) => LINF_GRADIENT.includes(attackKind(r.attack, options.kinds)!));
    if (blackBox.length === 0 || whiteBox.length === 0) continue;
    const defenses = defensesOf(at).filter((d) => blackBox.some((r) => r.accuracy[d] !== undefined));
    for (const defense of defenses) {
      const best = (list: ResultRow[]) =>
        list
          .filter((r) => r.accuracy[defense] !== undefined)
          .reduce<ResultRow | undefined>(
            (m, r) => (m && m.accuracy[defense] <= r.accuracy[defense] ? m : r),
            undefined,
          );
      const bb = best(blackBox);
      const wb = best(whiteBox);
      if (!bb || !wb) continue;
      if (bb.accuracy[defense] < wb.accuracy[defense] - margin) {
        findings.push({
          check: "black-box",
          level: "warning",
          attack: bb.attack,
          mode,
          defense,
          epsilon,
          message:
            `${defense} (${mode}) at epsilon ${formatEpsilon(epsilon)}: the gradient-free ${bb.attack} leaves accuracy ` +
            `${fmt(bb.accuracy[defense])}, lower than the best gradient attack ${wb.attack} (${fmt(wb.accuracy[defense])}): ` +
            `the gradient is masked for ${defense}; its robustness is at most the lower number.`,
        });
      }
    }
  }
  return findings;
}

export interface RandomizedOptions {
  /** Names of the randomized defenses (as in the rows). */
  randomized: readonly string[];
  /** Forward passes each was scored with. */
  passes: number;
  /** EOT samples per gradient in adaptive mode, when known. */
  eot?: number;
}

/** (c) Randomized defenses are scored as the mean over passes: say so, and how many. */
export function checkRandomized(rows: readonly ResultRow[], options: RandomizedOptions): SanityFinding[] {
  const present = defensesOf(rows);
  const adaptive = rows.some((r) => r.mode === "adaptive");
  return options.randomized
    .filter((d) => present.includes(d))
    .map((defense) => {
      const mean =
        options.passes > 1
          ? `its accuracies are means over ${options.passes} forward passes (± is the standard deviation over passes), never the best pass`
          : "its accuracies come from a single forward pass; pass --passes 5 or more for a mean";
      const eot =
        adaptive && options.eot !== undefined
          ? `; adaptive attacks average ${options.eot} EOT sample(s) of its randomness per gradient`
          : "";
      return {
        check: "randomized" as const,
        level: options.passes > 1 ? ("info" as const) : ("warning" as const),
        defense,
        message: `${defense} is randomized: ${mean}${eot}.`,
      };
    });
}

export interface ConvergenceInput {
  defense: string;
  epsilon: number;
  /** The attack as evaluated, and its accuracy. */
  base: { attack: string; accuracy: number };
  /** The same attack with doubled steps and restarts, on the same images. */
  stronger: { attack: string; accuracy: number };
  /** Images both ran on. */
  samples: number;
  /** Largest change allowed (default 0.01). */
  tolerance?: number;
}

/** (d) Doubling PGD's steps and restarts should change the accuracy by less than the tolerance. */
export function checkConvergence(c: ConvergenceInput): SanityFinding[] {
  const tolerance = c.tolerance ?? 0.01;
  const delta = c.stronger.accuracy - c.base.accuracy;
  const where = `${c.defense} at epsilon ${formatEpsilon(c.epsilon)}`;
  const moved = `${c.base.attack} leaves ${fmt(c.base.accuracy)}, ${c.stronger.attack} ${fmt(c.stronger.accuracy)} on the same ${c.samples} images`;
  // Accuracies are counts over n, and their difference carries float error (0.03 - 0.02 is 0.00999...): a
  // change of exactly the tolerance must warn whichever way the rounding falls.
  if (Math.abs(delta) >= tolerance - 1e-9) {
    return [
      {
        check: "convergence",
        level: "warning",
        attack: c.base.attack,
        mode: "adaptive",
        defense: c.defense,
        epsilon: c.epsilon,
        message:
          delta < 0
            ? `${where}: ${moved}: the attack had not converged (doubling steps and restarts lowers accuracy by ${fmt(-delta)}, tolerance ${tolerance}); the robustness is overstated.`
            : `${where}: ${moved}: the accuracy rises by ${fmt(delta)} with the stronger attack (tolerance ${tolerance}): a noisy (randomized) defense or too few images to tell.`,
      },
    ];
  }
  return [
    {
      check: "convergence",
      level: "info",
      attack: c.base.attack,
      mode: "adaptive",
      defense: c.defense,
      epsilon: c.epsilon,
      message: `${where}: ${moved}: the attack has converged (change ${fmt(Math.abs(delta))} < ${tolerance}).`,
    },
  ];
}

export interface MonotoneOptions {
  defense: string;
  attack: string;
  epsilon: number;
  /** Steps in the moving average that smooths EOT noise (default 5). */
  window?: number;
  /** Largest fall of the smoothed loss allowed, as a fraction of its rise (default 0.1). */
  tolerance?: number;
}

/**
 * (e) The batch-mean loss along PGD's steps (one restart) should rise: its
 * moving average must end above where it starts, and never fall by more than
 * `tolerance` of that rise.
 */
export function checkMonotoneLoss(trace: readonly number[], o: MonotoneOptions): SanityFinding[] {
  if (trace.length < 2) return [];
  // A window as long as the trace would leave one smoothed point and no rise to measure.
  const w = Math.max(1, Math.min(o.window ?? 5, trace.length - 1));
  const tolerance = o.tolerance ?? 0.1;
  const smooth: number[] = [];
  for (let i = 0; i + w <= trace.length; i++) smooth.push(trace.slice(i, i + w).reduce((a, b) => a + b, 0) / w);
  const rise = smooth[smooth.length - 1] - smooth[0];
  let peak = smooth[0];
  let fall = 0;
  for (const v of smooth) {
    peak = Math.max(peak, v);
    fall = Math.max(fall, peak - v);
  }
  const where = `${o.defense} at epsilon ${formatEpsilon(o.epsilon)}, ${o.attack}`;
  const said = `the loss goes from ${trace[0].toFixed(3)} to ${trace[trace.length - 1].toFixed(3)} over ${trace.length} steps; the largest fall of its ${w}-step moving average is ${fall.toFixed(3)}`;
  const ok = rise > 0 && fall <= tolerance * rise;
  return [
    {
      check: "monotone",
      level: ok ? "info" : "warning",
      attack: o.attack,
      mode: "adaptive",
      defense: o.defense,
      epsilon: o.epsilon,
      message: ok
        ? `${where}: ${said} (${rise > 0 ? ((100 * fall) / rise).toFixed(0) : "-"}% of its rise): the loss rises monotonically.`
        : `${where}: ${said}, against a rise of ${rise.toFixed(3)}: the loss does not rise monotonically, so the gradient the attack follows may be masked or its step too large.`,
    },
  ];
}

/** Every check, warnings first. */
export function sanityChecks(
  rows: readonly ResultRow[],
  options: KindOptions & {
    randomized?: readonly string[];
    passes?: number;
    eot?: number;
    ratio?: number;
    margin?: number;
  } = {},
): SanityFinding[] {
  const all = [
    ...checkDecay(rows, { kinds: options.kinds, ratio: options.ratio }),
    ...checkBlackBox(rows, { kinds: options.kinds, margin: options.margin }),
    ...checkRandomized(rows, { randomized: options.randomized ?? [], passes: options.passes ?? 1, eot: options.eot }),
  ];
  return [...all.filter((f) => f.level === "warning"), ...all.filter((f) => f.level === "info")];
}

/** Findings as a Markdown list, warnings marked. */
export function renderFindings(findings: readonly SanityFinding[]): string {
  if (findings.length === 0) return "No sanity check applied to these rows.";
  return findings.map((f) => `- ${f.level === "warning" ? "**Warning:** " : ""}${f.message}`).join("\n");
}

export interface ModePair {
  /** Attack name of the gray-box rows. */
  grayBox: string;
  /** Attack name of the adaptive rows (differs when it names EOT samples). */
  adaptive: string;
  /** Heading; default the gray-box name. */
  label?: string;
}

/**
 * Gray-box vs adaptive, per attack: one line per defense, one column per
 * epsilon, each cell "gray-box / adaptive" accuracy. Pairs default to attacks
 * whose name occurs in both modes. Empty when no attack ran in both modes.
 */
export function renderModeComparison(rows: readonly ResultRow[], pairs?: readonly ModePair[]): string {
  const names = (mode: AttackMode) => new Set(rows.filter((r) => r.mode === mode).map((r) => r.attack));
  const gray = names("gray-box");
  const adaptive = names("adaptive");
  const chosen: readonly ModePair[] =
    pairs ?? [...gray].filter((a) => adaptive.has(a)).map((a) => ({ grayBox: a, adaptive: a }));
  const sections: string[] = [];
  for (const pair of chosen) {
    const g = rows.filter((r) => r.mode === "gray-box" && r.attack === pair.grayBox);
    const a = rows.filter((r) => r.mode === "adaptive" && r.attack === pair.adaptive);
    if (g.length === 0 || a.length === 0) continue;
    const eps = [...new Set([...g, ...a].map((r) => r.epsilon))].sort((x, y) => x - y);
    const defenses = defensesOf([...g, ...a]);
    const cell = (list: ResultRow[], e: number, d: string) => {
      const v = list.find((r) => r.epsilon === e)?.accuracy[d];
      return v === undefined ? "-" : fmt(v);
    };
    const header = `| Defense | ${eps.map((e) => `ε=${formatEpsilon(e)}`).join(" | ")} |`;
    const rule = `| --- | ${eps.map(() => "---").join(" | ")} |`;
    const body = defenses.map(
      (d) => `| ${d.replace(/\|/g, "\\|")} | ${eps.map((e) => `${cell(g, e, d)} / ${cell(a, e, d)}`).join(" | ")} |`,
    );
    const title =
      pair.adaptive === pair.grayBox
        ? `**${pair.label ?? pair.grayBox}**`
        : `**${pair.label ?? pair.grayBox}** (adaptive: ${pair.adaptive})`;
    sections.push(`${title}: top-1 accuracy, gray-box / adaptive.\n\n${[header, rule, ...body].join("\n")}`);
  }
  return sections.join("\n\n");
}
