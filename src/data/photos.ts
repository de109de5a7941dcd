/**
 * A local evaluation set of real photographs, built from the sample images
 * that Debian packages ship (no ImageNet on this machine):
 *
 *   python3-skimage  skimage/data/*.png|jpg
 *   darknet          /usr/share/darknet/data/*.jpg
 *   opencv-doc       /usr/share/doc/opencv-doc/examples/data/*.jpg|png (OpenCV's samples/data)
 *
 * Each package is fetched with `apt-get download` into a cache folder and only
 * its data folder is unpacked there (dpkg-deb --fsys-tarfile | tar, the part
 * of `dpkg -x` we need; nothing is installed). The kept photographs are
 * converted to PNG in the NIPS 2017 competition layout:
 *
 *   <cache>/images/<ImageId>.png
 *   <cache>/images.csv   ImageId, TrueLabel, Source, SourceVersion, OriginalFile, Width, Height, Subject
 *   <cache>/photos.json  what was kept and what was skipped, with reasons
 *
 * Labels: these are not ImageNet-labelled images, so TrueLabel is -1 for all.
 * Reports on this set must use "agreement with the clean prediction" (the
 * model's own prediction on the unattacked image) instead of accuracy, and
 * say so. The Source column (the Debian package) lets a patch-VAE training
 * split train and evaluation images by package.
 *
 * Selection: only colour photographs of natural scenes and objects, at least
 * `minSide` pixels on the shorter side. Every image of the data folders was
 * reviewed by eye once (PHOTO_SELECTION below records the verdicts and the
 * reasons); automatic checks (size, colour) run again on every build, so a
 * changed package cannot slip a grayscale or tiny image in. Second views of
 * stereo pairs and sequences are left out so that the set holds no
 * near-duplicates.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { DataError, VaeguardError } from "../core/errors.js";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.js";
import { checkInt, fail } from "../core/validate.js";

export interface PhotoPackage {
  /** Short prefix of the ImageIds from this package. */
  prefix: string;
  /** The data folder inside the package, without the leading slash. */
  dataDir: string;
}

export const PHOTO_PACKAGES: Record<string, PhotoPackage> = {
  "python3-skimage": { prefix: "skimage", dataDir: "usr/lib/python3/dist-packages/skimage/data" },
  darknet: { prefix: "darknet", dataDir: "usr/share/darknet/data" },
  "opencv-doc": { prefix: "opencv", dataDir: "usr/share/doc/opencv-doc/examples/data" },
};

type Verdict = { keep: true; subject: string } | { keep: false; why: string };

/**
 * The reviewed verdicts for the colour images of reasonable size in each data
 * folder (tiny, grayscale and colourless files are dropped by the automatic
 * checks first and not listed). Files not listed here are skipped as "not
 * reviewed".
 */
export const PHOTO_SELECTION: Record<string, Record<string, Verdict>> = {
  "python3-skimage": {
    "astronaut.png": { keep: true, subject: "astronaut portrait" },
    "chelsea.png": { keep: true, subject: "cat" },
    "coffee.png": { keep: true, subject: "cup of coffee" },
    "motorcycle_left.png": { keep: true, subject: "motorcycle in a garage" },
    "rocket.jpg": { keep: true, subject: "rocket on a launch pad" },
    "motorcycle_right.png": { keep: false, why: "second view of the stereo pair motorcycle_left.png" },
    "color.png": { keep: false, why: "synthetic colour wheel" },
    "hubble_deep_field.jpg": { keep: false, why: "astronomical image, nearly colourless" },
    "ihc.png": { keep: false, why: "microscopy slide, not a natural scene" },
    "logo.png": { keep: false, why: "logo drawing" },
    "retina.jpg": { keep: false, why: "medical fundus image, not a natural scene" },
  },
  darknet: {
    "dog.jpg": { keep: true, subject: "dog, bicycle and car" },
    "eagle.jpg": { keep: true, subject: "eagle" },
    "giraffe.jpg": { keep: true, subject: "giraffe and zebra" },
    "horses.jpg": { keep: true, subject: "horses" },
    "kite.jpg": { keep: true, subject: "beach with kites and people" },
    "person.jpg": { keep: true, subject: "person, dog and horse" },
    "scream.jpg": { keep: false, why: "painting (Munch, The Scream), not a photograph" },
  },
  "opencv-doc": {
    "aero1.jpg": { keep: true, subject: "aerial view of a town" },
    "aloeL.jpg": { keep: true, subject: "aloe plant in a pot" },
    "apple.jpg": { keep: true, subject: "apple" },
    "baboon.jpg": { keep: true, subject: "mandrill face" },
    "board.jpg": { keep: true, subject: "circuit board" },
    "building.jpg": { keep: true, subject: "office building" },
    "butterfly.jpg": { keep: true, subject: "butterfly on a leaf" },
    "chicky_512.png": { keep: true, subject: "small dog" },
    "ela_original.jpg": { keep: true, subject: "notebook on a table" },
    "fruits.jpg": { keep: true, subject: "citrus fruits" },
    "graf1.png": { keep: true, subject: "graffiti wall" },
    "home.jpg": { keep: true, subject: "ornate building and sky" },
    "left.jpg": { keep: true, subject: "books on a desk" },
    "leuvenA.jpg": { keep: true, subject: "street with brick houses" },
    "messi5.jpg": { keep: true, subject: "football player" },
    "orange.jpg": { keep: true, subject: "orange" },
    "rubberwhale1.png": { keep: true, subject: "toys on a table" },
    "smarties.png": { keep: true, subject: "coloured sweets" },
    "squirrel_cls.jpg": { keep: true, subject: "squirrel" },
    "stuff.jpg": { keep: true, subject: "pencil, lighter and tape on a table" },
    "aero3.jpg": { keep: false, why: "second view of aero1.jpg" },
    "aloeR.jpg": { keep: false, why: "second view of the stereo pair aloeL.jpg" },
    "ela_modified.jpg": { keep: false, why: "edited copy of ela_original.jpg" },
    "graf3.png": { keep: false, why: "second view of graf1.png" },
    "leuvenB.jpg": { keep: false, why: "second view of leuvenA.jpg" },
    "right.jpg": { keep: false, why: "second view of the stereo pair left.jpg" },
    "rubberwhale2.png": { keep: false, why: "next frame after rubberwhale1.png" },
    "licenseplate_motion.jpg": { keep: false, why: "synthetically motion-blurred" },
    "HappyFish.jpg": { keep: false, why: "cartoon drawing" },
    "WindowsLogo.jpg": { keep: false, why: "logo" },
    "opencv-logo.png": { keep: false, why: "logo" },
    "opencv-logo-white.png": { keep: false, why: "logo" },
    "detect_blob.png": { keep: false, why: "synthetic shapes" },
    "ml.png": { keep: false, why: "cartoon drawing" },
    "pca_test1.jpg": { keep: false, why: "synthetic test pattern" },
    "pic2.png": { keep: false, why: "synthetic shapes" },
    "pic3.png": { keep: false, why: "synthetic shapes" },
    "pic4.png": { keep: false, why: "synthetic shapes" },
    "pic5.png": { keep: false, why: "synthetic shapes" },
    "starry_night.jpg": { keep: false, why: "painting (van Gogh), not a photograph" },
    "cards.png": { keep: false, why: "nearly colourless photograph of playing cards on white" },
    "sudoku.png": { keep: false, why: "nearly colourless photograph of a printed page" },
    "imageTextN.png": { keep: false, why: "text" },
    "imageTextR.png": { keep: false, why: "text" },
    "text_defocus.jpg": { keep: false, why: "blurred text" },
    "text_motion.jpg": { keep: false, why: "blurred text" },
    "gradient.png": { keep: false, why: "synthetic gradient" },
  },
};

export interface PhotoSetOptions {
  /** Cache folder (default <repository>/.cache/photos). */
  cacheDir?: string;
  /** Packages to use (default all of PHOTO_PACKAGES). */
  packages?: string[];
  /** Smallest shorter side in pixels (default 256). */
  minSide?: number;
  /** Smallest mean chroma (max - min of R, G, B on 0..255, over a 64x64 thumbnail) for a colour image (default 8). */
  minChroma?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface PhotoRecord {
  id: string;
  source: string;
  sourceVersion: string;
  originalFile: string;
  width: number;
  height: number;
  subject: string;
}

export interface PhotoSetReport {
  cacheDir: string;
  csv: string;
  kept: PhotoRecord[];
  skipped: { source: string; file: string; why: string }[];
  perPackage: Record<string, { version: string; images: number; kept: number }>;
}

/** The repository root (this file is src/data/photos.ts or dist/src/data/photos.js). */
function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(d, "package.json"))) return d;
    d = dirname(d);
  }
  return process.cwd();
}

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string; code?: string };
    const detail =
      err.code === "ENOENT"
        ? `${cmd} is not available (a Debian system is needed)`
        : (err.stderr || err.message).trim();
    throw new VaeguardError(`${cmd} ${args.join(" ")} failed: ${detail.split("\n").slice(-3).join(" | ")}`, {
      cause: e,
    });
  }
}

/** Download a package (once) and unpack its data folder into <cache>/extract/<package>. */
function fetchPackage(cacheDir: string, pkg: string, log: (s: string) => void): { root: string; version: string } {
  const debs = join(cacheDir, "debs");
  mkdirSync(debs, { recursive: true });
  const find = () => readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  let deb = find();
  if (!deb) {
    log(`apt-get download ${pkg}`);
    run("apt-get", ["download", pkg], debs);
    deb = find();
    if (!deb) throw new VaeguardError(`apt-get download ${pkg} left no .deb file in ${debs}`);
  }
  const debPath = join(debs, deb);
  const version = run("dpkg-deb", ["-f", debPath, "Version"], debs).trim();
  const root = join(cacheDir, "extract", pkg);
  const dataDir = PHOTO_PACKAGES[pkg].dataDir;
  const stamp = join(root, `.${basename(deb)}.done`);
  if (!existsSync(stamp)) {
    log(`unpacking /${dataDir} from ${deb}`);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    // The data folder only: `dpkg -x` would unpack the whole package (opencv-doc: 270 MB of HTML).
    execFileSync("sh", ["-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "./$3"', "sh", debPath, root, dataDir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    writeFileAtomic(stamp, `${version}\n`);
  }
  return { root, version };
}

/** Mean chroma and distinct colours of a 64x64 thumbnail: a cheap colour / synthetic-image check. */
export async function colourStats(file: string): Promise<{ chroma: number; colours: number }> {
  const { data } = await sharp(file)
    .flatten({ background: "#ffffff" })
    .toColourspace("srgb")
    .removeAlpha()
    .resize(64, 64, { fit: "fill" })
    .raw()
    .toBuffer({ resolveWithObject: true });
  let chroma = 0;
  const colours = new Set<number>();
  for (let i = 0; i < data.length; i += 3) {
    const r = data[i];
    const g = data[i + 1];
    const b = data[i + 2];
    chroma += Math.max(r, g, b) - Math.min(r, g, b);
    colours.add(((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3));
  }
  return { chroma: chroma / (data.length / 3), colours: colours.size };
}

/**
 * Download, select and convert the photographs; write images/, images.csv and
 * photos.json into the cache folder. Safe to run again: downloads and
 * unpacked folders are reused, outputs rewritten atomically.
 */
export async function buildPhotoSet(options: PhotoSetOptions = {}): Promise<PhotoSetReport> {
  const cacheDir = resolve(options.cacheDir ?? join(repoRoot(), ".cache", "photos"));
  const packages = options.packages ?? Object.keys(PHOTO_PACKAGES);
  for (const p of packages) {
    if (!(p in PHOTO_PACKAGES)) fail(`one of ${Object.keys(PHOTO_PACKAGES).join(", ")}`, "packages", p);
  }
  const minSide = checkInt(options.minSide ?? 256, "minSide", 1);
  const minChroma = options.minChroma ?? 8;
  const log = options.log ?? (() => {});
  const imagesDir = join(cacheDir, "images");
  mkdirSync(imagesDir, { recursive: true });

  const kept: PhotoRecord[] = [];
  const skipped: PhotoSetReport["skipped"] = [];
  const perPackage: PhotoSetReport["perPackage"] = {};
  for (const pkg of packages) {
    const { root, version } = fetchPackage(cacheDir, pkg, log);
    const found = await selectPackagePhotos(pkg, root, version, { minSide, minChroma, imagesDir, kept, skipped });
    perPackage[pkg] = { version, images: found.images, kept: found.kept };
    log(`${pkg} ${version}: ${found.kept} of ${found.images} images kept`);
  }
  removeUnselectedPngs(imagesDir, kept);
  const csvPath = join(cacheDir, "images.csv");
  writeFileAtomic(csvPath, photoCsv(kept));
  const report: PhotoSetReport = { cacheDir, csv: csvPath, kept, skipped, perPackage };
  writeJsonAtomic(join(cacheDir, "photos.json"), {
    note:
      "TrueLabel is -1: these photographs have no ImageNet labels. Report agreement with the clean prediction, not accuracy. " +
      "Split training and evaluation data by the Source package.",
    minSide,
    minChroma,
    ...report,
  });
  return report;
}

/** What selectPackagePhotos needs: the checks' thresholds, where PNGs go, and the lists it appends to. */
interface PhotoSelectionRun {
  minSide: number;
  minChroma: number;
  imagesDir: string;
  kept: PhotoRecord[];
  skipped: PhotoSetReport["skipped"];
}

/**
 * Check every image of one unpacked package, convert the kept ones to PNG in
 * imagesDir and append them to `run.kept` (the others to `run.skipped`, with
 * the reason). Returns how many images the data folder held and how many were kept.
 */
async function selectPackagePhotos(
  pkg: string,
  root: string,
  version: string,
  run: PhotoSelectionRun,
): Promise<{ images: number; kept: number }> {
  const dataDir = join(root, PHOTO_PACKAGES[pkg].dataDir);
  if (!existsSync(dataDir)) throw new DataError(dataDir, `package ${pkg} ${version} has no such data folder`);
  const realData = realpathSync(dataDir);
  const files = readdirSync(dataDir)
    .filter((f) => /\.(png|jpe?g)$/i.test(f))
    .sort();
  const selection = PHOTO_SELECTION[pkg] ?? {};
  let keptHere = 0;
  for (const f of files) {
    const full = join(dataDir, f);
    const checked = await checkPhoto(full, realData, selection[f], run);
    if ("skip" in checked) {
      run.skipped.push({ source: pkg, file: f, why: checked.skip });
      continue;
    }
    const id = `${PHOTO_PACKAGES[pkg].prefix}_${basename(f, extname(f)).replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const png = await sharp(full).rotate().flatten({ background: "#ffffff" }).toColourspace("srgb").png().toBuffer();
    writeFileAtomic(join(run.imagesDir, `${id}.png`), png);
    run.kept.push({
      id,
      source: pkg,
      sourceVersion: version,
      originalFile: `/${PHOTO_PACKAGES[pkg].dataDir}/${f}`,
      width: checked.width,
      height: checked.height,
      subject: checked.subject,
    });
    keptHere++;
  }
  return { images: files.length, kept: keptHere };
}

/**
 * The automatic checks (inside the data folder, decodable, size, colour) and
 * then the reviewed verdict, in that order: the automatic ones run on every
 * build so that a changed package cannot slip a grayscale or tiny image in.
 */
async function checkPhoto(
  full: string,
  realData: string,
  verdict: Verdict | undefined,
  limits: { minSide: number; minChroma: number },
): Promise<{ skip: string } | { width: number; height: number; subject: string }> {
  const { minSide, minChroma } = limits;
  // Symlinks out of the data folder are refused: the package is untrusted input.
  if (!realpathSync(full).startsWith(realData) || !statSync(full).isFile()) {
    return { skip: "not a regular file inside the data folder" };
  }
  let meta: sharp.Metadata;
  try {
    meta = await sharp(full).metadata();
  } catch (e) {
    return { skip: `cannot be decoded (${(e as Error).message})` };
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (Math.min(w, h) < minSide) return { skip: `too small (${w}x${h}; shorter side under ${minSide})` };
  if ((meta.channels ?? 0) < 3) return { skip: "grayscale" };
  const stats = await colourStats(full);
  if (stats.chroma < minChroma) {
    return { skip: `too little colour (mean chroma ${stats.chroma.toFixed(1)} < ${minChroma}): grayscale content` };
  }
  if (!verdict) return { skip: "not reviewed (not in PHOTO_SELECTION)" };
  if (!verdict.keep) return { skip: verdict.why };
  return { width: w, height: h, subject: verdict.subject };
}

/** Drop PNGs of earlier builds that are no longer selected, so the folder matches the CSV. */
function removeUnselectedPngs(imagesDir: string, kept: PhotoRecord[]): void {
  const ids = new Set(kept.map((k) => `${k.id}.png`));
  for (const f of readdirSync(imagesDir)) if (f.endsWith(".png") && !ids.has(f)) rmSync(join(imagesDir, f));
}

/** images.csv in the NIPS 2017 competition layout plus provenance columns; fields quoted as CSV needs. */
function photoCsv(kept: PhotoRecord[]): string {
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return (
    "ImageId,TrueLabel,Source,SourceVersion,OriginalFile,Width,Height,Subject\n" +
    kept
      .map((k) =>
        [k.id, "-1", k.source, k.sourceVersion, k.originalFile, String(k.width), String(k.height), k.subject]
          .map(q)
          .join(","),
      )
      .join("\n") +
    "\n"
  );
}

async function main(argv: string[]): Promise<void> {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(
      "Usage: scripts/photos.sh [--cache DIR] [--packages a,b] [--min-side N] [--json]\n" +
        "Build the evaluation set of real photographs from Debian packages (see src/data/photos.ts).\n",
    );
    return;
  }
  const json = argv.includes("--json");
  const report = await buildPhotoSet({
    cacheDir: get("cache"),
    packages: get("packages")?.split(","),
    minSide: get("min-side") === undefined ? undefined : Number(get("min-side")),
    log: json ? undefined : (l) => process.stderr.write(`${l}\n`),
  });
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  for (const [p, s] of Object.entries(report.perPackage)) {
    process.stdout.write(`${p} ${s.version}: kept ${s.kept} of ${s.images} images\n`);
  }
  process.stdout.write(
    `${report.kept.length} photographs in ${join(report.cacheDir, "images")}, labels in ${report.csv}\n`,
  );
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`photos: error: ${(e as Error).message}\n`);
    process.exitCode = e instanceof VaeguardError ? 2 : 1;
  });
}
