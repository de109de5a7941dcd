/**
 * The Markdown report. It opens with "What this is" (data set, label source, attacks and their
 * parameters, mode, steps, EOT samples, seed, images, command, versions, time), because a number
 * without its conditions cannot be compared with anything; then one section per attack.
 */
import { dirname, isAbsolute, relative, sep } from "node:path";
import { writeFileAtomic } from "../io/atomic.js";
import { fail } from "../core/validate.js";
import type { PaperTable } from "../eval/paper.js";
import { formatEpsilon, renderMarkdownTable, renderPaperComparison, type DefensePair } from "./table.js";
import {
  checkMetadata,
  checkRows,
  groupLabel,
  groupRows,
  resolveDefenses,
  type AttackMode,
  type AttackParams,
  type ResultRow,
  type RunMetadata,
} from "./types.js";

export interface ReportImage {
  /** Absolute, or relative to the report's folder. */
  path: string;
  caption?: string;
  /** Place the image in this attack's section (and mode's, if given) instead of a general section. */
  attack?: string;
  mode?: AttackMode;
}

export interface PaperComparison {
  paper: PaperTable;
  /** Which of our sweeps to compare; mode defaults to the first sweep of that attack. */
  attack: string;
  mode?: AttackMode;
  pairs?: readonly DefensePair[];
  maxDistance?: number;
  /** Leave our unattacked row (epsilon 0) out of the matching, so it never stands in for a paper row of an attack. */
  attackedOnly?: boolean;
}

export interface ReportInput {
  title: string;
  metadata: RunMetadata;
  rows: readonly ResultRow[];
  defenses?: readonly string[];
  plots?: readonly ReportImage[];
  grid?: ReportImage;
  notes?: string;
  paperComparisons?: readonly PaperComparison[];
}

export interface RenderOptions {
  /** The report's folder, against which absolute image paths are made relative. */
  baseDir?: string;
}

export const MODE_DESCRIPTIONS: Record<AttackMode, string> = {
  "gray-box": "the attacker differentiates through the classifier only and does not know the defense",
  adaptive: "the attacker attacks the defended model (defense then classifier), through BPDA or EOT where needed",
};

/** A fence longer than any backtick run inside, so a command holding backticks cannot close it. */
function codeBlock(text: string, lang = ""): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(longest + 1);
  return `${fence}${lang}\n${text}\n${fence}`;
}

function link(path: string, baseDir: string | undefined): string {
  const rel = baseDir !== undefined && isAbsolute(path) ? relative(baseDir, path) : path;
  return encodeURI(rel.split(sep).join("/")).replace(/\(/g, "%28").replace(/\)/g, "%29");
}

function image(img: ReportImage, baseDir: string | undefined): string {
  const alt = (img.caption ?? "").replace(/[[\]]/g, "");
  const md = `![${alt}](${link(img.path, baseDir)})`;
  return img.caption ? `${md}\n\n*${img.caption}*` : md;
}

function paramValue(value: AttackParams[string]): string {
  return Array.isArray(value) ? `[${value.join(", ")}]` : String(value);
}

function describeAttack(attack: string, mode: AttackMode, rows: readonly ResultRow[], params?: AttackParams): string {
  const recorded = (v: number | undefined) => (v === undefined ? "not recorded" : String(v));
  const others = Object.entries(params ?? {})
    .filter(([key, value]) => key !== "steps" && key !== "eotSamples" && value !== undefined)
    .map(([key, value]) => `${key}=${paramValue(value)}`);
  const parts = [
    `steps: ${recorded(params?.steps)}`,
    `EOT samples: ${recorded(params?.eotSamples)}`,
    `epsilons: ${rows.map((r) => formatEpsilon(r.epsilon)).join(", ")}`,
    `parameters: ${params === undefined ? "not recorded" : others.length > 0 ? others.join(", ") : "defaults"}`,
  ];
  return `  - **${attack}**, ${mode}; ${parts.join("; ")}`;
}

function whatThisIs(input: ReportInput): string {
  const m = input.metadata;
  const groups = groupRows(input.rows);
  const modes = [...new Set(groups.map((g) => g.mode))];
  const lines = [
    "## What this is",
    "",
    `- **Data set:** ${m.dataset}`,
    `- **Label source:** ${m.labelSource}`,
    `- **Images evaluated:** ${m.samples}`,
    "- **Attacks:**",
    ...groups.map((g) => describeAttack(g.attack, g.mode, g.rows, m.attackParams[g.attack])),
    `- **Mode:** ${modes.map((mode) => `${mode} (${MODE_DESCRIPTIONS[mode]})`).join("; ")}`,
    `- **Seed:** ${m.seed}`,
    `- **Created:** ${m.createdAt}`,
  ];
  if (m.paperReference) lines.push(`- **Paper reference:** ${m.paperReference}`);
  lines.push("- **Command:**", "", codeBlock(m.command, "sh"), "", "- **Software versions:**", "");
  const versions = Object.entries(m.versions);
  if (versions.length === 0) lines.push("  not recorded");
  else lines.push("| Software | Version |", "| --- | --- |", ...versions.map(([k, v]) => `| ${k} | ${v} |`));
  return lines.join("\n");
}

function matches(img: ReportImage, attack: string, mode: AttackMode): boolean {
  return img.attack === attack && (img.mode === undefined || img.mode === mode);
}

export function renderMarkdownReport(input: ReportInput, options: RenderOptions = {}): string {
  if (typeof input.title !== "string" || input.title.trim() === "") fail("non-empty string", "title", input.title);
  checkMetadata(input.metadata);
  checkRows(input.rows);
  const chosen = input.defenses && resolveDefenses(input.rows, input.defenses);
  const base = options.baseDir;
  const plots = input.plots ?? [];
  const groups = groupRows(input.rows);
  const out = [`# ${input.title}`, whatThisIs(input)];

  for (const g of groups) {
    const inGroup = chosen?.filter((d) => g.rows.some((r) => r.accuracy[d] !== undefined));
    const defenses = inGroup && inGroup.length > 0 ? inGroup : undefined;
    const section = [
      `## ${groupLabel(g)}`,
      `Top-1 accuracy (${input.metadata.labelSource}) on ${input.metadata.samples} images. ` +
        "rel-L2 is the average relative L2 difference between clean and attacked images." +
        (g.rows.some((r) => r.std !== undefined && Object.keys(r.std).length > 0)
          ? " ± is the standard deviation over repeated runs of a randomized defense."
          : ""),
      renderMarkdownTable(g.rows, { defenses }).trimEnd(),
      ...plots.filter((p) => matches(p, g.attack, g.mode)).map((p) => image(p, base)),
    ];
    out.push(section.join("\n\n"));
  }
  const general = plots.filter((p) => !groups.some((g) => matches(p, g.attack, g.mode)));
  if (general.length > 0) out.push(["## Plots", ...general.map((p) => image(p, base))].join("\n\n"));
  if (input.grid) out.push(["## Example images", image(input.grid, base)].join("\n\n"));

  const comparisons = input.paperComparisons ?? [];
  if (comparisons.length > 0) {
    const parts = ["## Comparison with the paper"];
    for (const c of comparisons) {
      const group = groups.find((g) => g.attack === c.attack && (c.mode === undefined || g.mode === c.mode));
      if (!group)
        fail(`an attack and mode present in the rows`, "paperComparisons.attack", `${c.attack} ${c.mode ?? ""}`.trim());
      parts.push(
        `Our ${groupLabel(group)} sweep against ${c.paper.reference} (${c.paper.caption}). ` +
          "Each paper row is matched to our row with the nearest average relative L2 difference.",
        renderPaperComparison(c.attackedOnly ? group.rows.filter((r) => r.epsilon > 0) : group.rows, c.paper, {
          pairs: c.pairs,
          maxDistance: c.maxDistance,
        }).trimEnd(),
      );
    }
    out.push(parts.join("\n\n"));
  }
  if (input.notes && input.notes.trim() !== "") out.push(`## Notes\n\n${input.notes.trim()}`);
  return out.join("\n\n") + "\n";
}

/** Writes atomically; absolute image paths become links relative to the report's folder. */
export function writeMarkdownReport(path: string, input: ReportInput): string {
  const text = renderMarkdownReport(input, { baseDir: dirname(path) });
  writeFileAtomic(path, text);
  return text;
}
