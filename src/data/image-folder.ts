/**
 * Image-folder data sets, read and resized with sharp.
 *
 * Two layouts:
 * - "csv": a folder of PNG/JPEG images plus a CSV with at least the columns
 *   ImageId and TrueLabel (the NIPS 2017 adversarial competition dev set:
 *   `dev_dataset.csv` beside `images/<ImageId>.png`; its TrueLabel counts
 *   from 1 with 0 for "background", as the competition's 1001-class
 *   Inception V3 does — pass labelOffset -1 for a 1000-class model). A
 *   TargetClass column, when present, is returned as targets.
 * - "class-folders": one sub-folder per class (labels are the indices of the
 *   sorted folder names), as torchvision's ImageFolder.
 *
 * Every image is resized so that its shorter side fits the output size and
 * centre-cropped (sharp's fit "cover"), EXIF orientation applied,
 * transparency flattened onto white, converted to sRGB.
 *
 * Every file is checked: a file that is not a PNG or JPEG, cannot be read or
 * decoded, or has no label is reported by name with a DataError (hidden
 * files, whose names start with ".", are passed over). No file
 * outside the data folder is read: paths are resolved with their symbolic
 * links, and CSV entries or links that lead outside are rejected.
 */
import { closeSync, lstatSync, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync } from "node:fs";
import { basename, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import sharp from "sharp";
import { ArgumentError, DataError } from "../core/errors.js";
import { Tensor, tensor } from "../core/tensor.js";
import { checkInt, checkOneOf, fail } from "../core/validate.js";

export type ImageFolderLayout = "csv" | "class-folders";

export interface ImageFolderOptions {
  /** Default "auto": "csv" when a CSV is given or found in the folder, else "class-folders". */
  layout?: ImageFolderLayout | "auto";
  /** CSV layout: the CSV file (relative to the folder, or absolute). Default: images.csv, dev_dataset.csv, or the folder's only .csv. */
  csv?: string;
  /** CSV layout: the folder of images, inside the data folder. Default: `images/` if it exists, else the folder itself. */
  imagesDir?: string;
  /** CSV column names (matched without regard to case). */
  idColumn?: string;
  labelColumn?: string;
  /** Read this column as target classes when present (default "TargetClass"). */
  targetColumn?: string;
  /** Added to every label and target (for example -1 for the competition's 1-based labels). Default 0. */
  labelOffset?: number;
  /** Skip files that are not PNG/JPEG (by extension) instead of failing; they are listed in `skipped`. Default false. */
  skipNonImages?: boolean;
  /** CSV layout: ignore images without a CSV row instead of failing. Default false. */
  ignoreUnlisted?: boolean;
}

export interface ImageFolderEntry {
  id: string;
  /** Real path of the image file. */
  file: string;
  label: number;
  target?: number;
  /** The other CSV columns of this image's row. */
  extra?: Record<string, string>;
}

export interface ImageFolderIndex {
  root: string;
  layout: ImageFolderLayout;
  entries: ImageFolderEntry[];
  /** class-folders: the class names, label i = classes[i]. */
  classes?: string[];
  /** csv: the CSV file and its columns. */
  csv?: string;
  columns?: string[];
  /** Files passed over (skipNonImages / ignoreUnlisted), relative to the root. */
  skipped: string[];
  description: string;
}

export interface LoadImagesOptions {
  /** Output size: S (square) or [height, width]. Default 299 (Inception V3). */
  size?: number | readonly [number, number];
  /** sharp's resampling kernel. Default "lanczos3". */
  kernel?: "nearest" | "linear" | "cubic" | "mitchell" | "lanczos2" | "lanczos3";
  /** Images decoded at once. Default 8. */
  concurrency?: number;
  /** Fail on an image that is not already of the output size instead of resizing it (default false). */
  exactSize?: boolean;
}

export interface ReadImageFolderOptions extends ImageFolderOptions, LoadImagesOptions {
  /** Load entries [offset, offset + limit) of the index only (every file is still indexed and checked). */
  offset?: number;
  limit?: number;
}

export interface ImageFolderData {
  /** [N, 3, H, W] float32 in [0, 1] */
  images: Tensor;
  /** [N] int64 */
  labels: Tensor;
  /** [N] int64, when the CSV has a target column */
  targets?: Tensor;
  ids: string[];
  files: string[];
  classes?: string[];
  /** Where the data came from, for reports. */
  source: string;
}

const IMAGE_EXT = new Set([".png", ".jpg", ".jpeg"]);

function isImageName(name: string): boolean {
  return IMAGE_EXT.has(extname(name).toLowerCase());
}

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel);
}

/** Real path of `p`, which must exist and lie inside `root` (a real path); else a DataError naming `p`. */
function realInside(root: string, p: string, what: string): string {
  let real: string;
  try {
    real = realpathSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(p, code === "ENOENT" ? `${what} not found` : `cannot resolve ${what} (${code})`, { cause: e });
  }
  if (!inside(root, real)) {
    throw new DataError(p, `${what} leads outside the data folder ${root} (to ${real}); refusing to read it`);
  }
  return real;
}

/** PNG or JPEG signature check on the first bytes; also proves the file can be opened. */
function checkSignature(file: string, shown: string): void {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new DataError(shown, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  const head = Buffer.alloc(8);
  let n: number;
  try {
    n = readSync(fd, head, 0, 8, 0);
  } catch (e) {
    throw new DataError(shown, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  } finally {
    closeSync(fd);
  }
  const png = n >= 8 && head.equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const jpeg = n >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
  if (!png && !jpeg) {
    throw new DataError(
      shown,
      n === 0
        ? "is empty, not an image"
        : `is not a PNG or JPEG image (starts with bytes ${head.subarray(0, n).toString("hex")})`,
    );
  }
}

// ---------------------------------------------------------------- CSV

/** Parse CSV text (RFC 4180: quoted fields, doubled quotes, CRLF or LF). Returns rows with their 1-based line numbers. */
export function parseCsv(text: string): { line: number; fields: string[] }[] {
  const rows: { line: number; fields: string[] }[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let field = "";
  let fields: string[] = [];
  let rowLine = 1;
  let quoted = false;
  let any = false;
  const endRow = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === "" && !any)) rows.push({ line: rowLine, fields });
    fields = [];
    field = "";
    any = false;
  };
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === "\n") line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"') {
      quoted = true;
      any = true;
    } else if (ch === ",") {
      fields.push(field);
      field = "";
      any = true;
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      endRow();
      line++;
      rowLine = line;
    } else {
      field += ch;
      any = true;
    }
  }
  if (quoted) throw new ArgumentError(`CSV: a quoted field opened on line ${rowLine} is never closed`);
  if (field !== "" || fields.length > 0 || any) endRow();
  return rows;
}

function parseLabel(v: string | undefined): number | null {
  if (v === undefined) return null;
  const s = v.trim();
  if (!/^[+-]?\d+$/.test(s)) return null;
  return Number(s);
}

// ---------------------------------------------------------------- indexing

function findCsv(root: string, options: ImageFolderOptions): string | null {
  if (options.csv !== undefined) {
    if (typeof options.csv !== "string" || options.csv === "") fail("a CSV file path", "csv", options.csv);
    return resolve(root, options.csv);
  }
  for (const n of ["images.csv", "dev_dataset.csv"]) if (existsFile(join(root, n))) return join(root, n);
  const csvs = readdirSync(root).filter((n) => n.toLowerCase().endsWith(".csv") && existsFile(join(root, n)));
  if (csvs.length === 1) return join(root, csvs[0]);
  if (csvs.length > 1) {
    throw new DataError(root, `holds several CSV files (${csvs.join(", ")}); say which one with the csv option`);
  }
  return null;
}

/** A file that is not an image: listed in `skipped` with skipNonImages, else a DataError naming it. */
function passOverNonImage(
  shown: string,
  options: ImageFolderOptions,
  skipped: string[],
  shownRel: (p: string) => string,
): void {
  if (!options.skipNonImages) {
    throw new DataError(
      shown,
      "is not an image file (expected .png, .jpg or .jpeg; pass skipNonImages to pass over such files)",
    );
  }
  skipped.push(shownRel(shown));
}

function existsFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * Walk `dir` (a real path inside `root`), calling `onFile(realPath, shownPath)`
 * for each non-hidden file. Symbolic links to files inside the root are
 * followed; links that leave the root, and links to folders, are rejected.
 */
function walk(root: string, dir: string, onFile: (real: string, shown: string) => void, recurse: boolean): void {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith(".")) continue;
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) {
      const real = realInside(root, p, "symbolic link");
      if (statSync(real).isDirectory()) {
        throw new DataError(p, "is a symbolic link to a folder; such links are not followed");
      }
      onFile(real, p);
    } else if (st.isDirectory()) {
      if (recurse) walk(root, p, onFile, recurse);
      else onFile(p, p);
    } else if (st.isFile()) {
      onFile(p, p);
    } else {
      throw new DataError(p, "is not a regular file");
    }
  }
}

/**
 * List and check an image folder without decoding the images: every file is
 * accounted for, has a PNG or JPEG signature and a label, and lies inside the
 * folder.
 */
export function indexImageFolder(folder: string, options: ImageFolderOptions = {}): ImageFolderIndex {
  if (typeof folder !== "string" || folder === "") fail("a folder path", "folder", folder);
  let root: string;
  try {
    root = realpathSync(resolve(folder));
  } catch (e) {
    throw new DataError(resolve(folder), "data folder not found", { cause: e });
  }
  if (!statSync(root).isDirectory()) throw new DataError(root, "is not a folder");
  const layoutOpt = checkOneOf(options.layout ?? "auto", "layout", ["auto", "csv", "class-folders"] as const);
  const labelOffset = checkInt(options.labelOffset ?? 0, "labelOffset");
  const csv = layoutOpt === "class-folders" ? null : findCsv(root, options);
  const layout: ImageFolderLayout = layoutOpt === "auto" ? (csv ? "csv" : "class-folders") : layoutOpt;
  if (layout === "csv" && !csv) {
    throw new DataError(root, "has no CSV file (looked for images.csv, dev_dataset.csv, or a single *.csv)");
  }
  const skipped: string[] = [];
  const shownRel = (p: string) => relative(root, p) || basename(p);
  return layout === "csv"
    ? indexCsv(root, csv!, options, labelOffset, skipped, shownRel)
    : indexClassFolders(root, options, labelOffset, skipped, shownRel);
}

/** A CSV layout's columns: the header and where the id, label and (optional, -1) target are. */
interface CsvColumns {
  header: string[];
  idCol: number;
  labelCol: number;
  targetCol: number;
}

/** What reading one CSV row needs. */
interface CsvLayout {
  root: string;
  csvPath: string;
  imagesDir: string;
  labelOffset: number;
  cols: CsvColumns;
}

function indexCsv(
  root: string,
  csvPath: string,
  options: ImageFolderOptions,
  labelOffset: number,
  skipped: string[],
  shownRel: (p: string) => string,
): ImageFolderIndex {
  const rows = readCsvRows(csvPath);
  const cols = csvColumns(csvPath, rows[0], options);
  const { header, labelCol } = cols;
  const imagesDir = csvImagesDir(root, options);
  const files = imageFiles(root, imagesDir, csvPath, options, skipped, shownRel);
  const layout: CsvLayout = { root, csvPath, imagesDir, labelOffset, cols };

  const entries: ImageFolderEntry[] = [];
  const seen = new Map<string, number>();
  const used = new Set<string>();
  for (const row of rows.slice(1)) {
    const entry = csvEntry(layout, row, seen);
    used.add(entry.file);
    entries.push(entry);
  }
  for (const [real, shown] of files) {
    if (used.has(real)) continue;
    if (options.ignoreUnlisted) {
      skipped.push(shownRel(shown));
      continue;
    }
    throw new DataError(shown, `has no row in ${csvPath} (missing label); pass ignoreUnlisted to pass over such files`);
  }
  if (entries.length === 0) throw new DataError(csvPath, "lists no images");
  const csvName = relative(root, csvPath).startsWith("..") ? csvPath : relative(root, csvPath);
  return {
    root,
    layout: "csv",
    entries,
    csv: csvPath,
    columns: header,
    skipped,
    description:
      `image folder ${root} (CSV layout: ${entries.length} images in ${relative(root, imagesDir) || "."}/, ` +
      `labels from column ${header[labelCol]} of ${csvName}${labelOffset !== 0 ? `, offset ${labelOffset}` : ""})`,
  };
}

/** The CSV file's rows, header first; at least the header. */
function readCsvRows(csvPath: string): { line: number; fields: string[] }[] {
  let text: string;
  try {
    text = readFileSync(csvPath, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(csvPath, code === "ENOENT" ? "CSV file not found" : `cannot read the CSV file (${code})`, {
      cause: e,
    });
  }
  let rows: { line: number; fields: string[] }[];
  try {
    rows = parseCsv(text);
  } catch (e) {
    throw new DataError(csvPath, (e as Error).message, { cause: e });
  }
  if (rows.length === 0) throw new DataError(csvPath, "is empty (expected a header row with ImageId and TrueLabel)");
  return rows;
}

function csvColumns(csvPath: string, headerRow: { fields: string[] }, options: ImageFolderOptions): CsvColumns {
  const header = headerRow.fields.map((h) => h.trim());
  const col = (name: string, required: boolean): number => {
    const i = header.findIndex((h) => h.toLowerCase() === name.toLowerCase());
    if (i < 0 && required) {
      throw new DataError(csvPath, `has no column '${name}' (its columns: ${header.join(", ")})`);
    }
    return i;
  };
  const idCol = col(options.idColumn ?? "ImageId", true);
  const labelCol = col(options.labelColumn ?? "TrueLabel", true);
  const targetCol = col(options.targetColumn ?? "TargetClass", false);
  return { header, idCol, labelCol, targetCol };
}

/** The folder the CSV's images are in: options.imagesDir, else images/ when it exists, else the root. */
function csvImagesDir(root: string, options: ImageFolderOptions): string {
  let imagesDir: string;
  if (options.imagesDir !== undefined) {
    if (typeof options.imagesDir !== "string") fail("a folder path", "imagesDir", options.imagesDir);
    const p = resolve(root, options.imagesDir);
    imagesDir = p === root ? root : realInside(root, p, "images folder");
  } else {
    const p = join(root, "images");
    imagesDir = exists(p) ? realInside(root, p, "images folder") : root;
  }
  if (!statSync(imagesDir).isDirectory()) throw new DataError(imagesDir, "is not a folder");
  return imagesDir;
}

/** Every image file of the images folder (not the CSV, not sub-folders), by real path, with its shown path. */
function imageFiles(
  root: string,
  imagesDir: string,
  csvPath: string,
  options: ImageFolderOptions,
  skipped: string[],
  shownRel: (p: string) => string,
): Map<string, string> {
  const files = new Map<string, string>();
  const csvReal = existsFile(csvPath) ? realpathSync(csvPath) : csvPath;
  walk(
    root,
    imagesDir,
    (real, shown) => {
      if (real === csvReal) return;
      if (statSync(real).isDirectory()) return; // sub-folders of the images folder are not part of the CSV layout
      if (!isImageName(real)) {
        passOverNonImage(shown, options, skipped, shownRel);
        return;
      }
      files.set(real, shown);
    },
    false,
  );
  return files;
}

/** One CSV row's entry: its ImageId checked (`seen` holds the ids of earlier rows), its image file found, its labels parsed. */
function csvEntry(
  layout: CsvLayout,
  row: { line: number; fields: string[] },
  seen: Map<string, number>,
): ImageFolderEntry {
  const { root, csvPath, imagesDir, labelOffset } = layout;
  const { header, idCol, labelCol, targetCol } = layout.cols;
  const where = `line ${row.line}`;
  const id = (row.fields[idCol] ?? "").trim();
  if (id === "") throw new DataError(csvPath, `${where}: empty ImageId`);
  if (seen.has(id)) throw new DataError(csvPath, `${where}: ImageId '${id}' already appears on line ${seen.get(id)}`);
  seen.set(id, row.line);
  if (id.includes("/") || id.includes("\\") || id.includes("\0") || id === "." || id === ".." || isAbsolute(id)) {
    throw new DataError(
      csvPath,
      `${where}: ImageId '${id}' is not a plain file name; entries may not leave the images folder`,
    );
  }
  const candidates = isImageName(id) ? [id] : [".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"].map((e) => id + e);
  const found = candidates.map((c) => join(imagesDir, c)).find((p) => exists(p));
  if (!found) {
    throw new DataError(
      csvPath,
      `${where}: no image file for ImageId '${id}' in ${imagesDir} (tried ${candidates.join(", ")})`,
    );
  }
  const real = realInside(root, found, "image file");
  const label = parseLabel(row.fields[labelCol]);
  if (label === null) {
    throw new DataError(
      found,
      `missing or non-integer label: ${header[labelCol]} is ${JSON.stringify(row.fields[labelCol] ?? "")} on ${where} of ${csvPath}`,
    );
  }
  const entry: ImageFolderEntry = { id, file: real, label: label + labelOffset };
  if (targetCol >= 0) {
    const t = parseLabel(row.fields[targetCol]);
    if (t === null) {
      throw new DataError(
        found,
        `non-integer ${header[targetCol]} ${JSON.stringify(row.fields[targetCol] ?? "")} on ${where} of ${csvPath}`,
      );
    }
    entry.target = t + labelOffset;
  }
  const extra: Record<string, string> = {};
  header.forEach((h, i) => {
    if (i !== idCol && i !== labelCol && i !== targetCol) extra[h] = row.fields[i] ?? "";
  });
  entry.extra = extra;
  checkSignature(real, found);
  return entry;
}

function indexClassFolders(
  root: string,
  options: ImageFolderOptions,
  labelOffset: number,
  skipped: string[],
  shownRel: (p: string) => string,
): ImageFolderIndex {
  const classes: string[] = [];
  const classDirs: string[] = [];
  walk(
    root,
    root,
    (real, shown) => {
      if (statSync(real).isDirectory()) {
        classes.push(basename(shown));
        classDirs.push(real);
      } else if (options.skipNonImages) {
        skipped.push(shownRel(shown));
      } else {
        throw new DataError(
          shown,
          "is a file outside any class folder (the class-folders layout has one sub-folder per class)",
        );
      }
    },
    false,
  );
  if (classes.length === 0) throw new DataError(root, "has no class sub-folders (and no CSV file)");
  const entries: ImageFolderEntry[] = [];
  classDirs.forEach((dir, label) => {
    walk(
      root,
      dir,
      (real, shown) => {
        if (!isImageName(real)) {
          passOverNonImage(shown, options, skipped, shownRel);
          return;
        }
        checkSignature(real, shown);
        const id = relative(root, shown).split(sep).join("/");
        entries.push({ id, file: real, label: label + labelOffset });
      },
      true,
    );
  });
  if (entries.length === 0) throw new DataError(root, "holds no images in its class folders");
  return {
    root,
    layout: "class-folders",
    entries,
    classes,
    skipped,
    description: `image folder ${root} (class-folders layout: ${entries.length} images in ${classes.length} classes, labels from sorted folder names)`,
  };
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- decoding

function checkSize(size: LoadImagesOptions["size"]): [number, number] {
  if (size === undefined) return [299, 299];
  if (typeof size === "number") {
    checkInt(size, "size", 1, 8192);
    return [size, size];
  }
  if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => Number.isInteger(d) && d >= 1 && d <= 8192)) {
    fail("an integer or [height, width] between 1 and 8192", "size", size);
  }
  return [size[0], size[1]];
}

/** Decode one image to RGB bytes [H, W, 3]: shorter side resized to fit, centre crop. */
export async function decodeImage(
  file: string,
  size: readonly [number, number],
  kernel: LoadImagesOptions["kernel"] = "lanczos3",
  exactSize = false,
): Promise<Uint8Array> {
  const [h, w] = size;
  if (exactSize) {
    let meta: sharp.Metadata;
    try {
      meta = await sharp(file).metadata();
    } catch (e) {
      throw new DataError(file, `cannot be decoded as an image: ${(e as Error).message}`, { cause: e });
    }
    if (meta.width !== w || meta.height !== h) {
      throw new DataError(file, `is ${meta.width}x${meta.height} pixels; expected ${w}x${h}`);
    }
  }
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await sharp(file)
      .rotate()
      .flatten({ background: "#ffffff" })
      .resize(w, h, { fit: "cover", position: "centre", kernel })
      .toColourspace("srgb")
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DataError(file, `cannot be decoded as an image: ${(e as Error).message}`, { cause: e });
  }
  const { data, info } = out;
  if (info.width !== w || info.height !== h) {
    throw new DataError(file, `decoded to ${info.width}x${info.height} instead of ${w}x${h}`);
  }
  if (info.channels === 3) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (info.channels === 1) {
    const rgb = new Uint8Array(h * w * 3);
    for (let i = 0; i < h * w; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i];
    return rgb;
  }
  throw new DataError(file, `decoded to ${info.channels} channels; expected 3`);
}

/** Decode, resize and crop images into one tensor [N, 3, H, W] float32 in [0, 1]. */
export async function loadImages(files: readonly string[], options: LoadImagesOptions = {}): Promise<Tensor> {
  const [h, w] = checkSize(options.size);
  const concurrency = checkInt(options.concurrency ?? 8, "concurrency", 1);
  if (!Array.isArray(files)) fail("an array of file paths", "files", files);
  const plane = h * w;
  const out = new Float32Array(files.length * 3 * plane);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= files.length) return;
      const rgb = await decodeImage(files[i], [h, w], options.kernel, options.exactSize ?? false);
      const base = i * 3 * plane;
      for (let p = 0; p < plane; p++) {
        out[base + p] = rgb[3 * p] / 255;
        out[base + plane + p] = rgb[3 * p + 1] / 255;
        out[base + 2 * plane + p] = rgb[3 * p + 2] / 255;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(files.length, 1)) }, worker));
  return tensor(out, [files.length, 3, h, w]);
}

/** Load (part of) an indexed folder. */
export async function loadImageFolderEntries(
  index: ImageFolderIndex,
  entries: readonly ImageFolderEntry[],
  options: LoadImagesOptions = {},
): Promise<ImageFolderData> {
  const [h, w] = checkSize(options.size);
  const images = await loadImages(
    entries.map((e) => e.file),
    { ...options, size: [h, w] },
  );
  const labels = tensor(
    BigInt64Array.from(entries, (e) => BigInt(e.label)),
    [entries.length],
  );
  const hasTargets = entries.length > 0 && entries.every((e) => e.target !== undefined);
  const targets = hasTargets
    ? tensor(
        BigInt64Array.from(entries, (e) => BigInt(e.target!)),
        [entries.length],
      )
    : undefined;
  return {
    images,
    labels,
    ...(targets ? { targets } : {}),
    ids: entries.map((e) => e.id),
    files: entries.map((e) => e.file),
    ...(index.classes ? { classes: index.classes } : {}),
    source: `${index.description}, resized (shorter side) and centre-cropped to ${h}x${w}`,
  };
}

/**
 * Read an image folder (either layout) into tensors: images [N, 3, H, W]
 * float32 in [0, 1], labels [N] int64, ids and a source description.
 */
export async function readImageFolder(folder: string, options: ReadImageFolderOptions = {}): Promise<ImageFolderData> {
  const index = indexImageFolder(folder, options);
  const offset = checkInt(options.offset ?? 0, "offset", 0);
  const limit = options.limit === undefined ? index.entries.length : checkInt(options.limit, "limit", 0);
  if (offset > index.entries.length) {
    throw new ArgumentError(`Expected integer of at most ${index.entries.length} for offset but received ${offset}`);
  }
  return loadImageFolderEntries(index, index.entries.slice(offset, offset + limit), options);
}
