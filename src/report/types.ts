/**
 * The results data model shared by every report format. Plain JS data, so the report layer
 * never needs the tensor engine: an evaluation writes these, a report reads them.
 */
import { checkInt, checkNumber, checkOneOf, fail } from "../core/validate.js";

// The results data model is eval's (an evaluation writes it); reports read it.
export {
  ATTACK_MODES,
  defensesOf,
  type AttackMode,
  type AttackParams,
  type ResultRow,
  type RunMetadata,
} from "../eval/results.js";
import { ATTACK_MODES, defensesOf, type AttackMode, type ResultRow, type RunMetadata } from "../eval/results.js";

export interface EvaluationResult {
  metadata: RunMetadata;
  rows: ResultRow[];
}

/** Rows of one attack in one mode: the unit of a table section and of a plot panel. */
export interface RowGroup {
  attack: string;
  mode: AttackMode;
  rows: ResultRow[];
}

export function checkRows(rows: readonly ResultRow[], name = "rows"): readonly ResultRow[] {
  if (!Array.isArray(rows) || rows.length === 0) fail("non-empty array of result rows", name, rows);
  rows.forEach((row, i) => {
    const at = `${name}[${i}]`;
    if (typeof row.attack !== "string" || row.attack === "") fail("non-empty string", `${at}.attack`, row.attack);
    checkOneOf(row.mode, `${at}.mode`, ATTACK_MODES);
    checkNumber(row.epsilon, `${at}.epsilon`, 0);
    checkNumber(row.relL2, `${at}.relL2`, 0);
    if (typeof row.accuracy !== "object" || row.accuracy === null) fail("object", `${at}.accuracy`, row.accuracy);
    for (const [defense, acc] of Object.entries(row.accuracy)) checkNumber(acc, `${at}.accuracy["${defense}"]`, 0, 1);
    for (const [defense, sd] of Object.entries(row.std ?? {})) checkNumber(sd, `${at}.std["${defense}"]`, 0);
  });
  return rows;
}

/** The requested defenses, each checked to occur in some row (a typo would otherwise give an empty column). */
export function resolveDefenses(rows: readonly ResultRow[], defenses?: readonly string[]): string[] {
  const present = defensesOf(rows);
  if (defenses === undefined) return present;
  if (!Array.isArray(defenses) || defenses.length === 0) fail("non-empty array of defense names", "defenses", defenses);
  for (const d of defenses) {
    if (!present.includes(d)) fail(`one of ${present.map((p) => JSON.stringify(p)).join(", ")}`, "defenses", d);
  }
  return [...defenses];
}

/** Split rows by (attack, mode), keeping first-seen order of groups and of rows. */
export function groupRows(rows: readonly ResultRow[]): RowGroup[] {
  const groups = new Map<string, RowGroup>();
  for (const row of rows) {
    const key = `${row.attack}\u0000${row.mode}`;
    let group = groups.get(key);
    if (!group) {
      group = { attack: row.attack, mode: row.mode, rows: [] };
      groups.set(key, group);
    }
    group.rows.push(row);
  }
  return [...groups.values()];
}

export function groupLabel(group: { attack: string; mode: AttackMode }): string {
  return `${group.attack} (${group.mode})`;
}

/** A file-name-safe form of a label: "I-FGSM (gray-box)" -> "i-fgsm-gray-box". */
export function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "x"
  );
}

function checkText(value: unknown, name: string): string {
  if (typeof value !== "string" || value.trim() === "") fail("non-empty string", name, value);
  return value;
}

export function checkMetadata(metadata: RunMetadata, name = "metadata"): RunMetadata {
  if (typeof metadata !== "object" || metadata === null) fail("object", name, metadata);
  checkText(metadata.dataset, `${name}.dataset`);
  checkText(metadata.labelSource, `${name}.labelSource`);
  checkText(metadata.command, `${name}.command`);
  checkText(metadata.createdAt, `${name}.createdAt`);
  checkInt(metadata.samples, `${name}.samples`, 0);
  checkInt(metadata.seed, `${name}.seed`);
  for (const key of ["versions", "attackParams"] as const) {
    if (typeof metadata[key] !== "object" || metadata[key] === null) fail("object", `${name}.${key}`, metadata[key]);
  }
  return metadata;
}
