/**
 * `vaeguard evaluate` as a run of the evaluation pipeline (pipeline.ts): a
 * trained classifier (and VAE) against a list of attacks, an epsilon grid and
 * a list of defenses, in gray-box mode, adaptive mode or both side by side;
 * resumes from its results files; returns the rows, the sanity findings and
 * the report draft (with sanity checks) that the command writes.
 */
import { basename } from "node:path";
import { attackParamDefault, describeAttack, type AttackName } from "../attacks/index.js";
import type { Defense } from "../defenses/index.js";
import { accuracy } from "../train/trainer.js";
import { modesOf, type AttackChoice, type EvaluateConfig } from "./config.js";
import type { SetupAttack } from "./evaluation.js";
import { labelSourceOf, reportDraft, resultsFileFor, sweepModes, withPipeline } from "./pipeline.js";
import type { Pipeline, ReportDraft, RunOptions, RunOutcome, SweepOutcome } from "./pipeline.js";
import { RECIPES } from "./recipes.js";
import type { AttackMode, AttackParams } from "./results.js";
import { renderFindings, renderModeComparison, sanityChecks, type ModePair, type SanityFinding } from "./sanity.js";

export { resultsFileFor };

export type EvaluateRunOptions = RunOptions;

export interface EvaluateOutcome extends RunOutcome {
  findings: SanityFinding[];
  /** One results file per mode: what a later run resumes. */
  resultsFiles: string[];
}

/** Describe an attack for the report: the attack's own parameters, with the grid instead of one epsilon. */
function attackParams(choice: AttackChoice, eps: number[], eotSamples: number, eotNote?: string): AttackParams {
  const described = describeAttack(choice.kind, { ...choice.params, eps: 0.1 });
  const { attack: _attack, eps: _eps, eotSamples: _eot, stepSize, ...rest } = described;
  const params: AttackParams = { spec: choice.spec, ...rest, eotSamples, epsilons: eps };
  if (choice.kind === "square") params.steps = described.queries as number;
  if (stepSize !== undefined) {
    params.stepSize = (choice.params.stepSize as number | undefined) ?? attackParamDefault(choice.kind, "stepSize");
  }
  if (eotNote) params.eotAppliesTo = eotNote;
  return params;
}

function gradientNote(d: Defense, eot: number): string {
  const how =
    d.gradient === "exact"
      ? "exact gradient"
      : d.gradient === "bpda-identity"
        ? "BPDA, identity gradient"
        : `BPDA with a differentiable stand-in (${d.gradient.slice("bpda-".length)})`;
  return `${d.name}: ${how}${d.randomized ? `, EOT over ${eot} sample(s) of its randomness` : ""}`;
}

/** How this evaluation names its attacks in each mode, and what it tells the report about them. */
class AttackNaming {
  readonly randomized: Defense[];
  readonly eotUsed: boolean;

  constructor(
    private readonly cfg: EvaluateConfig,
    defenses: Defense[],
  ) {
    this.randomized = defenses.filter((d) => d.randomized);
    this.eotUsed = this.randomized.length > 0 && cfg.eot > 1;
  }

  /** EOT samples of a mode's attacks: only adaptive attacks on randomized defenses take several. */
  eotIn(mode: AttackMode): number {
    return mode === "adaptive" && this.eotUsed ? this.cfg.eot : 1;
  }

  nameIn(c: AttackChoice, mode: AttackMode): string {
    return this.eotIn(mode) > 1 ? `${c.name}, EOT ${this.cfg.eot}` : c.name;
  }

  attacks(mode: AttackMode): SetupAttack[] {
    return this.cfg.attacks.map((c) => ({ name: this.nameIn(c, mode), kind: c.kind, params: c.params }));
  }

  /** Parameters, attack kinds and gray-box/adaptive pairs, keyed by row name. */
  describe(): { params: Record<string, AttackParams>; kinds: Record<string, AttackName>; pairs: ModePair[] } {
    const kinds: Record<string, AttackName> = {};
    const params: Record<string, AttackParams> = {};
    const pairs: ModePair[] = [];
    const eotNote =
      this.randomized.length > 0
        ? `randomized defenses (${this.randomized.map((d) => d.name).join(", ")}); a deterministic defense needs 1`
        : undefined;
    for (const c of this.cfg.attacks) {
      for (const mode of modesOf(this.cfg.mode)) {
        const name = this.nameIn(c, mode);
        kinds[name] = c.kind;
        params[name] = attackParams(c, this.cfg.eps, this.eotIn(mode), this.eotIn(mode) > 1 ? eotNote : undefined);
      }
      pairs.push({ grayBox: this.nameIn(c, "gray-box"), adaptive: this.nameIn(c, "adaptive"), label: c.name });
    }
    return { params, kinds, pairs };
  }
}

/** Settings a resumed results file of a mode must have been made with (the key order is the file's). */
function fingerprintOf(cfg: EvaluateConfig, p: Pipeline, naming: AttackNaming, mode: AttackMode) {
  return {
    tool: "vaeguard evaluate/1",
    dataset: cfg.dataset,
    test: p.test.source,
    samples: p.test.images.dims[0],
    seed: cfg.seed,
    batchSize: cfg.batchSize,
    classifierSha256: p.classifierRef.sha256,
    vaeSha256: p.vaeRef?.sha256 ?? null,
    defenses: cfg.defenses,
    attacks: cfg.attacks.map((a) => a.spec),
    passes: cfg.passes,
    // EOT samples change only adaptive numbers on randomized defenses.
    eot: naming.eotIn(mode) > 1 ? cfg.eot : null,
  };
}

/** Run an evaluation from resolved settings; return rows, findings and the report to write. */
export async function runEvaluate(cfg: EvaluateConfig, o: EvaluateRunOptions): Promise<EvaluateOutcome> {
  const print = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  return withPipeline(cfg, async (p) => {
    const n = p.test.images.dims[0];
    const cleanAccuracy = accuracy(p.classifier, p.test, cfg.batchSize);
    print(`evaluate: classifier clean accuracy on ${n} test images: ${cleanAccuracy.toFixed(4)}`);
    const naming = new AttackNaming(cfg, p.defenses);
    const swept = await sweepModes(p, {
      modes: modesOf(cfg.mode),
      attacks: (mode) => naming.attacks(mode),
      epsilons: cfg.eps,
      out: cfg.out,
      restart: o.restart,
      fingerprint: (mode) => fingerprintOf(cfg, p, naming, mode),
      gridImages: (mode) => (mode === "gray-box" ? 6 : undefined),
      runner: o.runner,
      quiet: o.quiet,
      progress: o.progress,
      log: (line) => {
        if (!o.quiet || /resuming/.test(line)) print(`evaluate: ${line.replace(/^evaluate: /, "")}`);
      },
    });
    const described = naming.describe();
    const findings = sanityChecks(swept.rows, {
      kinds: described.kinds,
      randomized: naming.randomized.map((d) => d.name),
      passes: cfg.passes,
      eot: naming.eotUsed ? cfg.eot : 1,
    });
    const report = evaluateReport(cfg, o, { p, naming, swept, cleanAccuracy, findings, ...described });
    return { rows: swept.rows, cleanAccuracy, findings, resultsFiles: swept.resultsFiles, report };
  });
}

interface ReportParts {
  p: Pipeline;
  naming: AttackNaming;
  swept: SweepOutcome;
  cleanAccuracy: number;
  findings: SanityFinding[];
  params: Record<string, AttackParams>;
  pairs: ModePair[];
}

/** Step 5 of evaluate: title, metadata, notes with the sanity checks, and the picture grid. */
function evaluateReport(cfg: EvaluateConfig, o: EvaluateRunOptions, r: ReportParts): ReportDraft {
  const { p, swept } = r;
  const recipe = RECIPES[cfg.dataset];
  const n = p.test.images.dims[0];
  return {
    ...reportDraft(p, swept, {
      title: `vaeguard evaluate: ${recipe.title}, ${modesOf(cfg.mode).join(" and ")}`,
      dataset: `${recipe.title} test set${n < p.total ? `, first ${n} of ${p.total} images` : ""}`,
      command: o.command,
      attackParams: r.params,
      gridDefenses: p.defenses.map((d) => d.name),
      gridCaption: (g) =>
        `First test images at ${g.attack} eps ${g.epsilon} (gray-box: one adversarial image for every defense)`,
      notes: evaluateNotes(cfg, r).join("\n\n"),
    }),
    removeStalePlots: true,
  };
}

function attacksNote(cfg: EvaluateConfig, r: ReportParts): string {
  const first = modesOf(cfg.mode)[0];
  const count = (k: number, word: string) => `${k} ${word}${k === 1 ? "" : "s"}`;
  const each = cfg.attacks.map((c) => {
    const p = r.params[r.naming.nameIn(c, first)];
    const parts = [count(Number(p.steps ?? 1), c.kind === "square" ? "query" : "step").replace(/querys$/, "queries")];
    if (p.restarts !== undefined) parts.push(count(Number(p.restarts), "restart"));
    return `${c.name} = \`${c.spec}\` (${parts.join(", ")})`;
  });
  const l2 = cfg.attacks.some((c) => c.kind === "pgd-l2") ? " (the L2 radius per image for pgd-l2)" : "";
  return `Attacks: ${each.join("; ")}. Epsilons: ${cfg.eps.join(", ")}${l2}.`;
}

function evaluateNotes(cfg: EvaluateConfig, r: ReportParts): string[] {
  const { p } = r;
  const modes = modesOf(cfg.mode);
  const n = p.test.images.dims[0];
  const notes = [
    `Classifier: ${basename(cfg.classifier)} (sha256 ${p.classifierRef.sha256.slice(0, 12)}), clean top-1 accuracy ${r.cleanAccuracy.toFixed(4)} on ${n} test images.`,
    p.vae
      ? `VAE: ${basename(cfg.vae!)} (sha256 ${p.vaeRef!.sha256.slice(0, 12)}), latent ${p.vae.latentDim}.`
      : "VAE: none used.",
    `Test data: ${p.test.source}. Labels: ${labelSourceOf(cfg.dataset, p.test)}.`,
    `Modes: ${modes.map((m) => `${m} (results in ${basename(resultsFileFor(cfg.out, m))})`).join(", ")}. ` +
      "In gray-box mode the attack sees only the classifier (the paper's setting); in adaptive mode each defense is attacked through itself.",
    modes.includes("adaptive")
      ? `Gradients through the defenses in adaptive mode: ${p.defenses.map((d) => gradientNote(d, cfg.eot)).join("; ")}.`
      : "",
    attacksNote(cfg, r),
    `Randomized defenses are scored as the mean over ${cfg.passes} forward pass(es), never the best one.`,
    `Seed ${cfg.seed}. The evaluation runs in cells of up to ${cfg.shardSize} images (one attack, mode, epsilon and, in adaptive mode, defense); libtorch's generator is seeded from each cell alone, so a resumed or distributed evaluation gives the same numbers as one uninterrupted process.`,
    `Time: evaluation ${r.swept.seconds.toFixed(0)} s (cells taken from earlier runs' results files cost nothing).`,
    `### Sanity checks\n\n${renderFindings(r.findings)}`,
  ].filter((s) => s !== "");
  const comparison = cfg.mode === "both" ? renderModeComparison(r.swept.rows, r.pairs) : "";
  if (comparison !== "") {
    notes.push(
      "### Gray-box vs adaptive\n\n" +
        "For a defense that claims robustness, the adaptive number is the one to quote: gray-box numbers come from an attacker who does not know the defense.\n\n" +
        comparison,
    );
  }
  return notes;
}
