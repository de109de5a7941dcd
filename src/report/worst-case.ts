/**
 * Tables and the Markdown report of a worst-case evaluation
 * (src/eval/worst-case.ts): one row per (defense, epsilon) with each attack's
 * accuracy, then the "worst case" column (per-image minimum), the number of
 * images and the 95% Wilson interval; then the gradient-masking checks.
 */
import type { MaskingResult, WorstCaseAttack, WorstCaseCell } from "../eval/worst-case.js";
import { renderFindings } from "../eval/sanity.js";
import { formatEpsilon } from "./table.js";

const COLUMNS: { attack: WorstCaseAttack; title: string }[] = [
  { attack: "pgd-ce", title: "PGD (CE)" },
  { attack: "pgd-margin", title: "PGD (margin)" },
  { attack: "square", title: "Square" },
  { attack: "transfer", title: "transfer" },
];

/** A column of the table: one of the cell's attacks, or the extra-restarts PGD-CE on the first images. */
interface Column {
  title: string;
  value(cell: WorstCaseCell): number | undefined;
}

function columnsOf(cells: readonly WorstCaseCell[]): Column[] {
  const attacks: Column[] = COLUMNS.filter((c) =>
    cells.some((cell) => cell.attacks.some((a) => a.attack === c.attack)),
  ).map((c) => ({ title: c.title, value: (cell) => cell.attacks.find((a) => a.attack === c.attack)?.accuracy }));
  const withSubset = cells.find((c) => c.subset !== undefined);
  if (!withSubset) return attacks;
  const s = withSubset.settings;
  const subset: Column = {
    title: `PGD (CE) x${s.subsetRestarts}, first ${withSubset.subset!.perImage.length}`,
    value: (cell) => cell.subset?.accuracy,
  };
  return [...attacks, subset];
}

const fmt = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(3));

function rowCells(cell: WorstCaseCell, columns: readonly Column[]): string[] {
  return [
    cell.defense,
    formatEpsilon(cell.epsilon),
    String(cell.n),
    fmt(cell.clean.accuracy),
    ...columns.map((c) => fmt(c.value(cell))),
    fmt(cell.worstCase),
    `[${fmt(cell.interval[0])}, ${fmt(cell.interval[1])}]`,
  ];
}

function header(columns: readonly Column[]): string[] {
  return ["defense", "eps", "n", "clean", ...columns.map((c) => c.title), "worst case", "95% interval"];
}

/** Aligned plain text, for the terminal. */
export function renderWorstCaseText(cells: readonly WorstCaseCell[]): string {
  const columns = columnsOf(cells);
  const rows = [header(columns), ...cells.map((c) => rowCells(c, columns))];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join("  "))
    .join("\n");
}

/** A Markdown table, the worst-case column in bold. */
export function renderWorstCaseMarkdown(cells: readonly WorstCaseCell[]): string {
  const columns = columnsOf(cells);
  const head = header(columns);
  const esc = (v: string) => v.replace(/\|/g, "\\|");
  const lines = [
    `| ${head.join(" | ")} |`,
    `| --- | ${head
      .slice(1)
      .map(() => "---:")
      .join(" | ")} |`,
    ...cells.map((c) => {
      const r = rowCells(c, columns).map(esc);
      r[r.length - 2] = `**${r[r.length - 2]}**`;
      return `| ${r.join(" | ")} |`;
    }),
  ];
  return lines.join("\n");
}

/**
 * The attacks each defense met, with their times. An attack's time sums its batches, including batches saved by an
 * earlier run of a resumed folder; the cell's own time is the wall time of the run that finished it (a cell taken
 * from a results file keeps it), so a resumed cell's attacks can add up to more than it.
 */
export function renderAttackSettings(cells: readonly WorstCaseCell[]): string {
  return cells
    .map(
      (c) =>
        `- ${c.defense}, eps ${formatEpsilon(c.epsilon)} (${c.randomized ? `randomized: scored as the mean of ${c.settings.passes} passes per image` : "deterministic"}): ` +
        [...c.attacks, ...(c.subset ? [c.subset] : [])].map((a) => `${a.name} ${a.seconds.toFixed(0)} s`).join("; ") +
        `; the run that finished the cell spent ${c.seconds.toFixed(0)} s of wall time on it.`,
    )
    .join("\n");
}

export interface WorstCaseReportInput {
  title: string;
  /** Lines of provenance: data, labels, checkpoints, command, versions. */
  about: string[];
  cells: readonly WorstCaseCell[];
  /** Masking checks by cell key `${defense}|${epsilon}`. */
  masking: Record<string, MaskingResult>;
}

export function maskingKey(defense: string, epsilon: number): string {
  return `${defense}|${epsilon}`;
}

export function renderWorstCaseReport(input: WorstCaseReportInput): string {
  const parts = [
    `# ${input.title}`,
    input.about.map((l) => `- ${l}`).join("\n"),
    "## Worst case per image",
    "Each column is one attack against the defense as it is (adaptive; transfer: PGD on the undefended classifier, " +
      'then the defense). "worst case" is the mean over images of each image\'s minimum over the clean image and every attack; ' +
      "the interval is Wilson's 95% score interval over the n images" +
      (input.cells.some((c) => c.randomized)
        ? " (for a randomized defense an image scores the fraction of passes that classify it correctly, so the interval is approximate)."
        : "."),
    renderWorstCaseMarkdown(input.cells),
    renderAttackSettings(input.cells),
  ];
  const checked = input.cells.filter((c) => input.masking[maskingKey(c.defense, c.epsilon)] !== undefined);
  if (checked.length > 0) {
    parts.push("## Gradient-masking checks");
    for (const c of checked) {
      const m = input.masking[maskingKey(c.defense, c.epsilon)];
      parts.push(
        `**${c.defense}, eps ${formatEpsilon(c.epsilon)}** (extra attacks on the first ${m.samples} images):\n\n${renderFindings(m.findings)}`,
      );
    }
  }
  return parts.join("\n\n") + "\n";
}
