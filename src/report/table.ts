/**
 * Result tables: aligned plain text for the terminal, Markdown for reports, CSV (RFC 4180) for
 * machines, and a side-by-side "ours vs paper" Markdown table.
 * Columns: epsilon, rel-L2, then one per defense in the given order.
 */
import { checkInt, checkNumber, fail } from "../core/validate.js";
import type { PaperRow, PaperTable } from "../eval/paper.js";
import { checkRows, groupRows, resolveDefenses, type ResultRow } from "./types.js";

export interface TableOptions {
  /** Defense columns and their order; default: every defense, in first-seen order. */
  defenses?: readonly string[];
  /** Decimal places for accuracies and rel-L2 (default 3, as in the paper's tables). */
  digits?: number;
}

export interface CsvOptions {
  defenses?: readonly string[];
  /** Prepend attack and mode columns, for files holding several sweeps. */
  includeAttack?: boolean;
}

const MISSING = "-";

export { formatEpsilon } from "../eval/results.js";
import { formatEpsilon } from "../eval/results.js";

export function formatAccuracy(accuracy: number | undefined, std: number | undefined, digits = 3): string {
  if (accuracy === undefined) return MISSING;
  return std === undefined ? accuracy.toFixed(digits) : `${accuracy.toFixed(digits)} ± ${std.toFixed(digits)}`;
}

function cells(rows: readonly ResultRow[], options: TableOptions): { header: string[]; body: string[][] } {
  checkRows(rows);
  const defenses = resolveDefenses(rows, options.defenses);
  const digits = checkInt(options.digits ?? 3, "digits", 0, 10);
  return {
    header: ["epsilon", "rel-L2", ...defenses],
    body: rows.map((r) => [
      formatEpsilon(r.epsilon),
      r.relL2.toFixed(digits),
      ...defenses.map((d) => formatAccuracy(r.accuracy[d], r.std?.[d], digits)),
    ]),
  };
}

/** Right-aligned columns separated by two spaces, with a dashed rule under the header. */
export function renderTextTable(rows: readonly ResultRow[], options: TableOptions = {}): string {
  const { header, body } = cells(rows, options);
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((line) => [...line[c]].length)));
  const pad = (line: string[]) => line.map((cell, c) => cell.padStart(widths[c])).join("  ");
  return [pad(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(pad)].join("\n") + "\n";
}

function markdownCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

function markdownTable(header: string[], body: string[][]): string {
  const line = (cellsOfLine: string[]) => `| ${cellsOfLine.map(markdownCell).join(" | ")} |`;
  return [line(header), `|${header.map(() => " ---: ").join("|")}|`, ...body.map(line)].join("\n") + "\n";
}

export function renderMarkdownTable(rows: readonly ResultRow[], options: TableOptions = {}): string {
  const { header, body } = cells(rows, options);
  return markdownTable(header, body);
}

/** RFC 4180: quote a field holding a comma, quote or line break, doubling inner quotes. */
export function csvField(value: string | number | undefined): string {
  const text = value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Full-precision numbers (no rounding: CSV is for machines), CRLF line ends as RFC 4180 says,
 * and a "<defense> std" column after the accuracies for each defense that has a std anywhere.
 */
export function renderCsv(rows: readonly ResultRow[], options: CsvOptions = {}): string {
  checkRows(rows);
  const defenses = resolveDefenses(rows, options.defenses);
  const withStd = defenses.filter((d) => rows.some((r) => r.std?.[d] !== undefined));
  const lead = options.includeAttack ? ["attack", "mode"] : [];
  const header = [...lead, "epsilon", "rel-L2", ...defenses, ...withStd.map((d) => `${d} std`)];
  const lines = rows.map((r) => [
    ...(options.includeAttack ? [r.attack, r.mode] : []),
    r.epsilon,
    r.relL2,
    ...defenses.map((d) => r.accuracy[d]),
    ...withStd.map((d) => r.std?.[d]),
  ]);
  return [header, ...lines].map((line) => line.map(csvField).join(",")).join("\r\n") + "\r\n";
}

export interface RelL2Match<P extends PaperRow = PaperRow> {
  paper: P;
  /** Our row nearest in rel-L2, or undefined when none lies within maxDistance. */
  ours: ResultRow | undefined;
  distance: number;
}

/**
 * For each paper row, our row with the nearest average relative L2 difference. Epsilons are not
 * comparable across implementations (the paper reports L2, not epsilon), so L2 is the common axis.
 * One of our rows may match several paper rows when our sweep is coarser; ties go to the earlier row.
 */
export function matchByRelL2<P extends PaperRow>(
  ours: readonly ResultRow[],
  paper: readonly P[],
  maxDistance = Infinity,
): RelL2Match<P>[] {
  checkRows(ours, "ours");
  checkNumber(maxDistance, "maxDistance", 0);
  return paper.map((p) => {
    let best: ResultRow | undefined;
    let distance = Infinity;
    for (const r of ours) {
      const d = Math.abs(r.relL2 - p.relL2);
      if (d < distance) [best, distance] = [r, d];
    }
    return { paper: p, ours: distance <= maxDistance ? best : undefined, distance };
  });
}

export interface DefensePair {
  /** Column name in the paper's table. */
  paper: string;
  /** Defense name in our rows. */
  ours: string;
  /** Column label; default: the paper's name. */
  label?: string;
}

export interface PaperComparisonOptions {
  /** Which paper column compares with which of ours; default: the defenses both share by name. */
  pairs?: readonly DefensePair[];
  /** Leave "ours" empty where the nearest rel-L2 is further away than this. */
  maxDistance?: number;
  digits?: number;
}

/** Markdown: one line per paper row, with both rel-L2 values shown so the quality of each match is visible. */
export function renderPaperComparison(
  ours: readonly ResultRow[],
  paper: PaperTable,
  options: PaperComparisonOptions = {},
): string {
  checkRows(ours, "ours");
  const groups = groupRows(ours);
  if (groups.length !== 1)
    fail(
      "rows of a single attack and mode",
      "ours",
      groups.map((g) => `${g.attack} ${g.mode}`),
    );
  const digits = checkInt(options.digits ?? 3, "digits", 0, 10);
  const ourDefenses = resolveDefenses(ours);
  const pairs: readonly DefensePair[] =
    options.pairs ?? paper.defenses.filter((d) => ourDefenses.includes(d)).map((d) => ({ paper: d, ours: d }));
  if (pairs.length === 0) fail("at least one defense shared with the paper", "pairs", ourDefenses);
  for (const p of pairs) {
    if (!paper.defenses.includes(p.paper)) fail(`one of ${paper.defenses.join(", ")}`, "pairs.paper", p.paper);
    if (!ourDefenses.includes(p.ours)) fail(`one of ${ourDefenses.join(", ")}`, "pairs.ours", p.ours);
  }
  const header = ["paper rel-L2", "ours rel-L2", "ours epsilon"];
  for (const p of pairs) header.push(`${p.label ?? p.paper} paper`, `${p.label ?? p.paper} ours`);
  const body = matchByRelL2(ours, paper.rows, options.maxDistance).map(({ paper: pr, ours: r }) => {
    const line = [
      pr.relL2.toFixed(digits),
      r ? r.relL2.toFixed(digits) : MISSING,
      r ? formatEpsilon(r.epsilon) : MISSING,
    ];
    for (const p of pairs) {
      line.push(formatAccuracy(pr.accuracy[p.paper], undefined, digits));
      line.push(r ? formatAccuracy(r.accuracy[p.ours], r.std?.[p.ours], digits) : MISSING);
    }
    return line;
  });
  return markdownTable(header, body);
}
