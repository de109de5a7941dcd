/**
 * A job thread for test/core/job-threads.test.ts (role "vaeguard-test-job"):
 * what it does is named by its data. Imported on the main thread it only
 * exports `draws`, the random numbers a seed gives.
 */
import { manualSeed, tidy } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import { jobThreadMain } from "../../src/core/job-thread.js";
import { rand, randn } from "../../src/core/tensor.js";
import { dropout } from "../../src/nn/functional.js";
import { takeDataset, type SharedDataset } from "../../src/data/shared.js";

export const JOB_FIXTURE_ROLE = "vaeguard-test-job";

export type FixtureJob =
  | { draw: number; rounds: number }
  | { sum: SharedDataset }
  | { fail: "checkpoint" | "plain"; wait?: boolean }
  | { spin: true }
  | { echo: true };

/** rand, randn and a dropout mask after manualSeed(seed): every random path of the engine. */
export function draws(seed: number): number[] {
  manualSeed(seed);
  return tidy(() => [
    ...(rand([3]).toArray() as number[]),
    ...(randn([3]).toArray() as number[]),
    ...(dropout(rand([6]).add(1), 0.5, true).toArray() as number[]),
  ]);
}

jobThreadMain<FixtureJob>(JOB_FIXTURE_ROLE, async (job) => {
  const d = job.data;
  if ("draw" in d) {
    // Many rounds, each reseeding: another thread's draws in between would show in the numbers.
    let out: number[] = [];
    for (let i = 0; i < d.rounds; i++) out = draws(d.draw);
    job.send(out);
  } else if ("sum" in d) {
    const ds = takeDataset(d.sum);
    job.send(tidy(() => [ds.images.sum().item(), ds.labels.sum().item()]));
    ds.images.dispose();
    ds.labels.dispose();
  } else if ("fail" in d) {
    // Told when: after the other job has started its progress bar.
    if (d.wait) await job.receive();
    job.log("failing now");
    if (d.fail === "checkpoint") throw new CheckpointError("/tmp/broken.safetensors", "is damaged");
    throw new Error("a bug");
  } else if ("spin" in d) {
    const bar = job.progress("spinning", 100, "steps");
    bar.update(1);
    job.send("spinning");
    // Until the main thread stops this thread.
    await new Promise(() => undefined);
  } else {
    for (;;) {
      const m = await job.receive();
      if (m === "stop") return;
      job.send(m);
    }
  }
});
