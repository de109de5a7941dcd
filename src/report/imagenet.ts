/**
 * Step 5 of the NIPS 2017 experiment (src/eval/imagenet/reproduce.ts): the report folder. report.md (tables of
 * both attacks, beside the paper's at the nearest rel-L2, plots, the picture
 * grid, the paper's claims checked, the acceptance check, the VAEs' training
 * and loss curves, what differs from the paper), results.json/.csv.
 */
import { basename, join } from "node:path";
import { writeReportBundle, reportSoftwareVersions, type BundlePaths } from "./bundle.js";
import { writeLossCurvePlot, type LossPoint } from "./loss-curves.js";
import { PAPER_TABLE_6, PAPER_TABLE_7 } from "../eval/paper.js";
import { softwareVersions } from "../core/versions.js";
import type { RunMetadata } from "../eval/results.js";
import type { ClaimCheck } from "../eval/imagenet/claims.js";
import type { ReportData } from "../eval/imagenet/reproduce.js";
import { CLEAN_KEEP_RATIO } from "../eval/imagenet/claims.js";
import { ENSEMBLE } from "../eval/imagenet/columns.js";
import { MONITOR, type PatchVaeSummary } from "../eval/imagenet/train-vaes.js";

/** Paper rows further than this in rel-L2 from all of ours are left unmatched. */
export const COMPARISON_MAX_DISTANCE = 0.02;

function lossPoints(vaes: readonly PatchVaeSummary[]): LossPoint[] {
  const out: LossPoint[] = [];
  for (const v of vaes) {
    const values = 3 * v.patchSize * v.patchSize;
    const model = `VAE ${v.patchSize}x${v.patchSize}`;
    for (const h of v.history) {
      if (h.validation?.reconstruction !== undefined)
        out.push({ model, kind: "reconstruction term", epoch: h.epoch, value: h.validation.reconstruction / values });
      if (h.validation?.[MONITOR] !== undefined)
        out.push({
          model,
          kind: "above its floor (stopping rule)",
          epoch: h.epoch,
          value: h.validation[MONITOR] / values,
        });
    }
  }
  return out;
}

/** Relative change of the monitored figure over the last epoch. */
export function lastChange(v: PatchVaeSummary): number | undefined {
  const [a, b] = v.history.slice(-2).map((h) => h.validation?.[MONITOR]);
  return a !== undefined && b !== undefined ? (b - a) / a : undefined;
}

function vaeTable(d: ReportData): string {
  const lines = d.vaes.map((v) => {
    const first = v.history.find((h) => h.validation?.[MONITOR] !== undefined)?.validation?.[MONITOR];
    const last = v.history.at(-1)?.validation?.[MONITOR];
    const per = 3 * v.patchSize * v.patchSize;
    const change = lastChange(v);
    return (
      `| ${v.patchSize}x${v.patchSize} | ${(v.parameters / 1e6).toFixed(1)}M | ${v.batchSize} | ${v.history.length} x ${v.epochPatches} | ` +
      `${first !== undefined ? (first / per).toFixed(4) : "-"} -> ${last !== undefined ? (last / per).toFixed(4) : "-"} | ` +
      `${change !== undefined ? `${(100 * change).toFixed(2)}%` : "-"} | ${v.stopReason} | ` +
      `${(v.trainSeconds / 60).toFixed(1)} min (CPU ${(v.trainCpuSeconds / 60).toFixed(1)} min) | ${basename(v.checkpoint)} |`
    );
  });
  return [
    "| VAE | Parameters | Batch | Epochs x patches | Reconstruction term above its floor, per value, first -> last epoch | Last change | Stopped by | Training time | Checkpoint |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ...lines,
  ].join("\n");
}

function claimsSection(claims: readonly ClaimCheck[]): string {
  return claims
    .map(
      (c) =>
        `**(${c.id}) ${c.claim}: ${c.outcome}.**\n\n` +
        c.verdicts.map((v) => `- ${v.where}: ${v.holds ? "holds" : "does not hold"}. ${v.evidence}.`).join("\n"),
    )
    .join("\n\n");
}

function acceptanceSection(a: ReportData["acceptance"]): string {
  const lines = a.checks.map(
    (c) => `| ${c.column} | ${c.clean.toFixed(3)} | ${c.ratio.toFixed(3)} | ${c.passes ? "yes" : "**no**"} |`,
  );
  return (
    `Undefended clean accuracy: ${a.undefended.toFixed(3)}. Each single-VAE column must keep at least ${CLEAN_KEEP_RATIO} of it ` +
    "(the paper's columns keep about 0.80 / 0.945 = 0.85).\n\n" +
    ["| Column | Clean accuracy | Ratio to undefended | Passes |", "| --- | ---: | ---: | --- |", ...lines].join("\n")
  );
}

/** The report's notes: how the numbers were made, the claims, the acceptance check, the VAEs, what differs from the paper. */
function imagenetNotes(d: ReportData, lossCurves: boolean): string {
  const n = d.images;
  const halfWidth = n > 0 ? 1.96 * Math.sqrt(0.25 / n) : NaN;
  const vaeNames = d.columns.filter((c) => c.startsWith("VAE "));
  return [
    `**Classifier:** ${d.classifierDescription}.${d.classOrder ? ` Its 1000 outputs are mapped to the 1001-class index by ${d.classOrder}.` : ""} ` +
      "The paper's classifier is Inception V3 (clean accuracy 0.945 on all 1,000 images); its weights are not available here.",
    `**Data:** ${d.splitDescription}. Evaluated: the first ${n} image(s) of the evaluation half (sorted by ImageId)` +
      (n < d.evaluationHalf
        ? `, of ${d.evaluationHalf}; a later run with the same settings continues where this one stopped`
        : "") +
      ". The patch VAEs never saw an evaluation image (the paper trained its VAEs on the same 1,000 images it evaluated).",
    `**Labels:** the true labels (TrueLabel of dev_dataset.csv, the 1001-class index with 0 = background). ` +
      `With ${n} images, an accuracy near 0.5 has a 95% confidence half-width of about ${halfWidth.toFixed(3)}; ` +
      "differences between columns on the same images are tested as paired counts below.",
    `**Attacks:** gray-box (the paper's setting: the attacker differentiates through the classifier only and does not know the defense). ` +
      `FGSM, and I-FGSM with ${d.ifgsmSteps} steps of epsilon/${d.ifgsmSteps} clipped to [0, 1] after each. ` +
      `Run by the shared evaluation pipeline in cells of (attack, epsilon, shard of images), each seeded from the cell alone (seed ${d.seed}), so a cell gives the same numbers in any process or order. ` +
      "Gray-box numbers overstate robustness against an attacker who knows the defense.",
    `**Defenses:** JPEG at quality 10 and 23 (libjpeg via sharp); each patch VAE reconstructs every patch of its grid (last patch anchored at the border), ` +
      `overlaps are averaged and the paper's 5x5 smoothing filter is applied; latent noise clipped to [-5, 5] (one sample per image, as the paper). ` +
      `${ENSEMBLE}: the pixel average of the ${vaeNames.length} VAE columns' outputs (the very reconstructions they were scored on).`,
    `## The paper's claims\n\n${claimsSection(d.claims)}`,
    `## Acceptance: clean accuracy kept by each patch VAE\n\n${acceptanceSection(d.acceptance)}`,
    `## Patch VAEs (Table 3)\n\n` +
      `Trained on random patches of the training half (fresh patches every epoch, ${d.training.flip ? "random horizontal flips, " : ""}` +
      `Adam lr ${d.training.lr}), loss BCE + ${d.training.beta} x KL summed over the latent dimensions, ` +
      `latent noise clipped to [-5, 5]. Stopping rule: the reconstruction term on a fixed set of monitor patches (fixed latent noise), ` +
      `less its floor, changes by less than ${100 * d.training.convergence}% from one epoch to the next (the paper: "until the first term in the loss function changes very little"), ` +
      "or a cap on epochs or training time (then the VAE is less trained than the paper's, and says so here). " +
      "The floor is the BCE of a perfect reconstruction (the patches' own entropy, about 95% of the term here): measured on the raw term, " +
      "1% is reached while the reconstructions are still a blur.\n\n" +
      vaeTable(d) +
      (lossCurves ? `\n\n![Loss curves](loss-curves.png)` : ""),
    `## Time\n\nData ${d.seconds.data.toFixed(0)} s, VAE training in this run ${d.seconds.training.toFixed(0)} s ` +
      `(all sessions: ${(d.vaes.reduce((a, v) => a + v.trainSeconds, 0) / 60).toFixed(1)} min), evaluation ${d.seconds.evaluation.toFixed(0)} s ` +
      `(${n > 0 ? (d.seconds.evaluation / n).toFixed(1) : "-"} s per image in this run, all points and columns), report ${d.seconds.report.toFixed(0)} s; ` +
      `${d.threads} libtorch thread(s).`,
    "## What differs from the paper\n\n" +
      "- Classifier: not the paper's Inception V3 (see above); its clean accuracy and its sensitivity to each attack differ, so compare shapes and orderings, not absolute numbers.\n" +
      "- The patch VAEs are trained on the disjoint training half only, for as long as the stopping rule or the cap allowed on a CPU.\n" +
      `- Evaluated on ${n} image(s) of the evaluation half, not all 1,000.\n` +
      "- Epsilons follow the paper's range (0.005 to 0.09); its tables list rel-L2 values, so rows are matched by the nearest rel-L2 (within " +
      `${COMPARISON_MAX_DISTANCE}).`,
  ].join("\n\n");
}

function imagenetMetadata(d: ReportData, attacks: string[]): RunMetadata {
  const n = d.images;
  return {
    dataset: `NIPS 2017 development set, evaluation half (${n} images)`,
    labelSource: "true labels (TrueLabel)",
    samples: n,
    seed: d.seed,
    command: d.command,
    versions: { ...reportSoftwareVersions(), ...softwareVersions() },
    attackParams: Object.fromEntries(
      attacks.map((a) => [
        a,
        {
          epsilons: d.rows
            .filter((r) => r.attack === a)
            .map((r) => r.epsilon)
            .join(", "),
          ...(a === "I-FGSM" ? { steps: d.ifgsmSteps } : { steps: 1 }),
        },
      ]),
    ),
    createdAt: new Date().toISOString(),
    paperReference: "Luo & Pfister 2018, Tables 6 and 7",
  };
}

export async function writeImagenetReport(d: ReportData): Promise<BundlePaths & { lossCurves?: string }> {
  const points = lossPoints(d.vaes);
  const lossCurves =
    points.length > 0
      ? await writeLossCurvePlot(
          join(d.outDir, "loss-curves"),
          points,
          "Patch VAE training: reconstruction term (BCE) per pixel value",
          "reconstruction term / (3 p^2)",
        )
      : undefined;
  const notes = imagenetNotes(d, lossCurves !== undefined);
  const pairs = [
    { paper: "No Def", ours: "No defense" },
    { paper: "JPEG 10", ours: "JPEG 10" },
    { paper: "JPEG 23", ours: "JPEG 23" },
    { paper: "VAE 16x16 s16", ours: "VAE 16x16 s16" },
    { paper: "VAE 32x32 s32", ours: "VAE 32x32 s32" },
    { paper: "VAE 64x64 s32", ours: "VAE 64x64 s32" },
    { paper: "VAE 64x64 s64", ours: "VAE 64x64 s64" },
    { paper: "Ensembled", ours: ENSEMBLE },
  ].filter((p) => d.columns.includes(p.ours));
  const attacks = [...new Set(d.rows.map((r) => r.attack))];
  const paths = await writeReportBundle(d.outDir, {
    title: "vaeguard: Tables 6 and 7 of Luo & Pfister (2018) on the NIPS 2017 development set",
    metadata: imagenetMetadata(d, attacks),
    rows: d.rows,
    defenses: d.columns,
    grid: d.grid
      ? { cells: d.grid.cells, options: { columnHeaders: d.grid.headers, minSize: 64 }, caption: d.grid.caption }
      : undefined,
    notes,
    paperComparisons: [
      { paper: PAPER_TABLE_6, attack: "FGSM" },
      { paper: PAPER_TABLE_7, attack: "I-FGSM" },
    ]
      .filter((c) => attacks.includes(c.attack))
      .map((c) => ({
        ...c,
        mode: "gray-box" as const,
        pairs,
        maxDistance: COMPARISON_MAX_DISTANCE,
        attackedOnly: true,
      })),
  });
  return { ...paths, ...(lossCurves ? { lossCurves } : {}) };
}
