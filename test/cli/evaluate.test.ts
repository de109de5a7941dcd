/**
 * `vaeguard evaluate` end to end on a tiny MNIST subset, with a classifier and
 * a VAE trained here for one epoch on 300 images: report files in both modes,
 * config file plus overriding flags, resume after a killed run, --restart,
 * and usage errors (exit code 2, one line).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dispose, getNumThreads, setNumThreads } from "../../src/core/engine.js";
import { loadMnist } from "../../src/data/index.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";
import { trainClassifier, trainVae } from "../../src/train/trainer.js";
import type { ResultRow } from "../../src/report/types.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
const env = { ...process.env, VAEGUARD_THREADS: "1" };
let dir = "";
let config = "";
const threads = getNumThreads();

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, "evaluate", ...args], { encoding: "utf8", env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface JsonOut {
  rows: ResultRow[];
  sanity: { check: string; level: string; defense?: string; message: string }[];
  report: string;
  resultsFiles: string[];
}

before(async () => {
  // One libtorch thread: on a busy two-core machine more threads make this tiny training slower, not faster.
  setNumThreads(1);
  dir = mkdtempSync(join(tmpdir(), "vaeguard-evaluate-"));
  const train = loadMnist({ split: "train", limit: 300 });
  try {
    const common = { train, epochs: 1, batchSize: 50, lr: 1e-3, seed: 0, quiet: true, log: () => {} };
    (
      await trainClassifier({
        ...common,
        makeModel: () => new MnistCnn(),
        checkpoint: join(dir, "clf.safetensors"),
      })
    ).model.dispose();
    (
      await trainVae({
        ...common,
        makeModel: () => new ConvVae(VAE_PRESETS.mnist),
        checkpoint: join(dir, "vae.safetensors"),
        loss: { beta: 0.01, reconstruction: "bce" },
      })
    ).model.dispose();
  } finally {
    dispose(train);
  }
  // Paths relative to the config file; --samples on the command line overrides its 40.
  config = join(dir, "run.yaml");
  writeFileSync(
    config,
    [
      "dataset: mnist",
      "classifier: clf.safetensors",
      "vae: vae.safetensors",
      "defenses: [none, 'jpeg:23', vae]",
      "attacks:",
      "  - {name: pgd, steps: 3}",
      "  - fgsm",
      "  - square:queries=10",
      "eps: [0, 0.2]",
      "mode: both",
      "eot: 2",
      "passes: 2",
      "samples: 40",
      "batch-size: 6",
    ].join("\n"),
  );
});

after(() => {
  setNumThreads(threads);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ORDER = ["PGD(3)", "FGSM", "Square(10)"].flatMap((a) => [`${a}@0`, `${a}@0.2`]);
let reference: ResultRow[] = [];

test("both modes on a tiny subset: rows, report files, sanity checks and the gray-box vs adaptive table", () => {
  const out = join(dir, "full");
  const r = run(["--config", config, "--samples", "12", "--out", out, "--json", "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as JsonOut;
  reference = result.rows;
  assert.deepEqual(
    result.rows.map((x) => `${x.mode}:${x.attack.replace(", EOT 2", "")}@${x.epsilon}`),
    [...ORDER.map((k) => `gray-box:${k}`), ...ORDER.map((k) => `adaptive:${k}`)],
  );
  // Adaptive rows name their EOT samples (the VAE is randomized) and have a rel-L2 per defense.
  for (const row of result.rows.filter((x) => x.mode === "adaptive")) {
    assert.match(row.attack, /, EOT 2$/);
    assert.deepEqual(Object.keys(row.relL2ByDefense ?? {}), ["No defense", "JPEG 23", "VAE"]);
  }
  for (const row of result.rows) {
    assert.deepEqual(Object.keys(row.accuracy), ["No defense", "JPEG 23", "VAE"]);
    // The VAE is scored over 2 passes, so it has a standard deviation.
    assert.ok(row.std?.VAE !== undefined, JSON.stringify(row));
  }
  // Gray-box attacks ignore the defense, so at epsilon 0 and for "No defense" both modes agree.
  const at = (mode: string, attack: string, eps: number) =>
    result.rows.find((x) => x.mode === mode && x.attack.startsWith(attack) && x.epsilon === eps)!;
  assert.equal(at("gray-box", "PGD", 0).accuracy["No defense"], at("adaptive", "PGD", 0).accuracy["No defense"]);
  assert.ok(at("gray-box", "PGD", 0.2).relL2 > 0.1);

  // Sanity checks ran: decay under PGD in adaptive mode for every defense, and the VAE's passes.
  const decay = result.sanity.filter((f) => f.check === "decay");
  assert.deepEqual(decay.map((f) => f.defense).sort(), ["JPEG 23", "No defense", "VAE"]);
  assert.ok(result.sanity.some((f) => f.check === "randomized" && /means over 2 forward passes/.test(f.message)));

  const files = readdirSync(out);
  for (const f of [
    "report.md",
    "results.json",
    "results.csv",
    "grid.png",
    "sweep-gray-box.json",
    "sweep-adaptive.json",
    "plot-pgd-3-gray-box.png",
    "plot-pgd-3-gray-box.svg",
    "plot-pgd-3-eot-2-adaptive.png",
    "plot-square-10-eot-2-adaptive.png",
    "plot-fgsm-gray-box.png",
  ]) {
    assert.ok(files.includes(f), `missing ${f} in ${files.join(", ")}`);
  }
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /^# vaeguard evaluate: MNIST, gray-box and adaptive/);
  assert.match(report, /\*\*Data set:\*\* MNIST test set, first 12 of 10000 images/);
  assert.match(report, /\*\*Label source:\*\* true labels of the MNIST test set/);
  assert.match(report, /## PGD\(3\) \(gray-box\)/);
  assert.match(report, /## PGD\(3\), EOT 2 \(adaptive\)/);
  assert.match(report, /\*\*PGD\(3\)\*\*, gray-box; steps: 3; EOT samples: 1;.*restarts=1/);
  assert.match(report, /\*\*PGD\(3\), EOT 2\*\*, adaptive; steps: 3; EOT samples: 2;/);
  assert.match(report, /\*\*Square\(10\)\*\*, gray-box; steps: 10; EOT samples: 1;.*queries=10/);
  assert.match(report, /JPEG 23: BPDA, identity gradient; VAE: exact gradient, EOT over 2 sample/);
  assert.match(report, /### Sanity checks/);
  assert.match(report, /VAE is randomized: its accuracies are means over 2 forward passes/);
  assert.match(report, /### Gray-box vs adaptive/);
  assert.match(report, /\*\*PGD\(3\)\*\* \(adaptive: PGD\(3\), EOT 2\): top-1 accuracy, gray-box \/ adaptive/);
  assert.match(report, /\| VAE \| \d\.\d{3} \/ \d\.\d{3} \| \d\.\d{3} \/ \d\.\d{3} \|/);
  assert.match(report, /vaeguard evaluate --config .*run\.yaml --samples 12/);

  const csv = readFileSync(join(out, "results.csv"), "utf8").trim().split("\r\n");
  assert.match(csv[0], /^attack,mode,epsilon,rel-L2,No defense,JPEG 23,VAE,VAE std$/);
  assert.equal(csv.filter((l) => /,adaptive,/.test(l)).length, 6);
  assert.equal(csv.filter((l) => /,gray-box,/.test(l)).length, 6);
  const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as {
    metadata: { attackParams: Record<string, Record<string, unknown>>; samples: number };
  };
  assert.equal(json.metadata.samples, 12);
  assert.equal(json.metadata.attackParams["PGD(3), EOT 2"].eotSamples, 2);
  assert.equal(json.metadata.attackParams["PGD(3)"].eotSamples, 1);
  assert.equal(json.metadata.attackParams["PGD(3)"].steps, 3);
});

test("a killed evaluation resumes from its results file and gives the same table as an uninterrupted one", async () => {
  assert.ok(reference.length > 0, "needs the first test's rows");
  const out = join(dir, "killed");
  const args = [bin, "evaluate", "--config", config, "--samples", "12", "--out", out];
  // Kill the child as soon as it reports its first finished row.
  const killed = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk;
      if (/eps [\d.]+: rel-L2/.test(stderr)) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("exit", () => resolve(stderr));
  });
  assert.match(killed, /PGD\(3\) \(gray-box\) eps 0: rel-L2/);
  const partial = JSON.parse(readFileSync(join(out, "sweep-gray-box.json"), "utf8")) as { rows: ResultRow[] };
  assert.ok(partial.rows.length >= 1 && partial.rows.length < 6, `interrupted after ${partial.rows.length} rows`);
  assert.ok(!existsSync(join(out, "sweep-adaptive.json")));
  assert.ok(!existsSync(join(out, "report.md")));

  const resumed = run(["--config", config, "--samples", "12", "--out", out, "--json"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stderr,
    new RegExp(`resuming .*sweep-gray-box\\.json \\(${partial.rows.length} rows, \\d+ of \\d+ cells already done\\)`),
  );
  assert.doesNotMatch(resumed.stderr, /PGD\(3\) \(gray-box\) eps 0: rel-L2/, "the finished row is not recomputed");
  assert.deepEqual((JSON.parse(resumed.stdout) as JsonOut).rows, reference);
});

test("other settings are refused with a pointer to --restart; --restart starts over", () => {
  const out = join(dir, "full");
  const other = run(["--config", config, "--samples", "12", "--out", out, "--seed", "1", "--mode", "gray-box"]);
  assert.equal(other.code, 2);
  const lines = other.stderr.trim().split("\n");
  assert.match(lines.at(-1)!, /^vaeguard: error: .*sweep-gray-box\.json: was made with other settings.*--restart$/);

  const restarted = run([
    ...["--config", config, "--samples", "12", "--out", out, "--seed", "1", "--mode", "gray-box"],
    ...["--attacks", "fgsm", "--restart", "--json"],
  ]);
  assert.equal(restarted.code, 0, restarted.stderr);
  assert.doesNotMatch(restarted.stderr, /resuming/);
  const rows = (JSON.parse(restarted.stdout) as JsonOut).rows;
  assert.deepEqual(
    rows.map((x) => `${x.mode}:${x.attack}@${x.epsilon}`),
    ["gray-box:FGSM@0", "gray-box:FGSM@0.2"],
  );
  // The report describes this run only: no adaptive section, no plots of the earlier run.
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /^# vaeguard evaluate: MNIST, gray-box\n/);
  assert.doesNotMatch(report, /\(adaptive\)/);
  assert.deepEqual(
    readdirSync(out)
      .filter((f) => f.startsWith("plot-"))
      .sort(),
    ["plot-fgsm-gray-box.png", "plot-fgsm-gray-box.svg"],
  );
});

test("usage errors: one line, exit code 2", () => {
  const spec = run(["--classifier", join(dir, "clf.safetensors"), "--attacks", "fgsm,pgd:steps=40:restart=2"]);
  assert.equal(spec.code, 2);
  assert.equal(
    spec.stderr.trim(),
    'vaeguard: error: Unknown parameter "restart" in attack spec "pgd:steps=40:restart=2"; pgd takes steps, stepSize, restarts, randomStart, loss',
  );

  const bad = join(dir, "bad.json");
  writeFileSync(bad, JSON.stringify({ classifier: "clf.safetensors", epsilons: [0, 0.1] }));
  const key = run(["--config", bad]);
  assert.equal(key.code, 2);
  assert.match(key.stderr, /bad\.json: unknown key "epsilons"/);
  assert.equal(key.stderr.trim().split("\n").length, 1, key.stderr);

  const vae = run(["--classifier", join(dir, "vae.safetensors"), "--samples", "5", "--out", join(dir, "x")]);
  assert.equal(vae.code, 2);
  assert.match(vae.stderr, /vae\.safetensors: holds a 'conv-vae' model but --classifier needs a classifier/);
});
