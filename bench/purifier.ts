/**
 * Images/s of one purifier training step with its attack (issue 12), batch
 * 128: FGSM from a random start against the paper's MNIST VAE + the Table 1
 * CNN together (one EOT sample of the latent noise), then one Adam step on the
 * VAE's parameters on CE + 0.01 * BCE + 1e-4 * KL, the CNN frozen. The code is
 * the trainer's own (adversarialBatch, purifierLoss).
 */
import { rand, randint } from "../src/core/tensor.js";
import { tidy } from "../src/core/engine.js";
import { Adam } from "../src/optim/optimizer.js";
import { MnistCnn } from "../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../src/models/vae.js";
import { DEFAULT_OBJECTIVE, adversarialBatch, purifierLoss } from "../src/train/purifier.js";

/**
 * Calls per second of wall time, and per second of the process's CPU time: on a shared machine the
 * second moves much less with other jobs' load (both engines' processes count all their threads).
 */
async function timeitAsync(fn: () => Promise<void>, seconds: number): Promise<{ wall: number; cpu: number }> {
  await fn(); // warm-up
  let n = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (;;) {
    await fn();
    n++;
    const el = (performance.now() - t0) / 1000;
    if (el >= seconds && n >= 3) {
      const c = process.cpuUsage(c0);
      return { wall: n / el, cpu: n / ((c.user + c.system) / 1e6) };
    }
  }
}

export async function benchPurifier(batch: number, seconds: number): Promise<Record<string, number>> {
  const clf = new MnistCnn();
  clf.eval();
  for (const p of clf.parameters()) p.requiresGrad_(false);
  const vae = new ConvVae(VAE_PRESETS.mnist);
  const x = rand([batch, 1, 28, 28]);
  const y = randint(0, 10, [batch]);
  const opt = new Adam(vae.parameters(), { lr: 1e-3 });
  const attack = { kind: "fgsm-rs" as const, alpha: 1.25 };
  const step = async () => {
    const xAdv = await adversarialBatch(vae, clf, x, y, { attack, eps: 0.3, eot: 1, clip: 5 });
    tidy(() => {
      opt.zeroGrad();
      purifierLoss(vae, clf, x, y, xAdv, DEFAULT_OBJECTIVE).loss.backward();
      opt.step();
    });
    xAdv.dispose();
  };
  const rate = await timeitAsync(step, seconds);
  const out = { "purifier.trainFgsmRs": batch * rate.wall, "purifier.trainFgsmRs.perCpuSecond": batch * rate.cpu };
  opt.dispose();
  for (const t of [x, y]) t.dispose();
  vae.dispose();
  clf.dispose();
  return out;
}
