/**
 * Images/s of one purifier training step with its attack (issue 12), batch
 * 128, in two settings, the code being the trainer's own (adversarialBatch,
 * purifierLoss):
 *
 * - purifier.trainFgsmRs: FGSM from a random start against the paper's MNIST
 *   VAE + the Table 1 CNN together (one EOT sample of the latent noise), then
 *   one Adam step on the VAE's parameters on CE + 0.01 * BCE + 1e-4 * KL;
 * - purifier.conv.trainPgd10: the recipe of the eps-0.3 result in
 *   docs/results/robust-purifier.md: PGD-10 (step 0.25 eps, random start)
 *   against the larger ConvPurifier + the CNN with the latent noise off
 *   (--clip 0), then one Adam step on the same objective plus 0.5 x the CE of
 *   purified clean images (--clean-weight 0.5).
 *
 * The CNN is frozen in both.
 */
import { rand, randint } from "../src/core/tensor.js";
import { tidy } from "../src/core/engine.js";
import { Adam } from "../src/optim/optimizer.js";
import { MnistCnn } from "../src/models/classifiers.js";
import { ConvPurifier, CONV_PURIFIER_PRESETS, type Purifier } from "../src/models/purifier.js";
import { ConvVae, VAE_PRESETS } from "../src/models/vae.js";
import {
  DEFAULT_OBJECTIVE,
  adversarialBatch,
  purifierLoss,
  type PurifierObjective,
  type TrainingAttack,
} from "../src/train/purifier.js";

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

interface StepSetting {
  figure: string;
  purifier: () => Purifier;
  attack: TrainingAttack;
  objective: PurifierObjective;
}

const SETTINGS: StepSetting[] = [
  {
    figure: "purifier.trainFgsmRs",
    purifier: () => new ConvVae(VAE_PRESETS.mnist),
    attack: { kind: "fgsm-rs", alpha: 1.25 },
    objective: DEFAULT_OBJECTIVE,
  },
  {
    figure: "purifier.conv.trainPgd10",
    purifier: () => new ConvPurifier(CONV_PURIFIER_PRESETS.mnist),
    attack: { kind: "pgd", steps: 10, alpha: 0.25 },
    objective: { ...DEFAULT_OBJECTIVE, clip: 0, cleanWeight: 0.5 },
  },
];

async function benchStep(s: StepSetting, batch: number, seconds: number): Promise<Record<string, number>> {
  const clf = new MnistCnn();
  clf.eval();
  for (const p of clf.parameters()) p.requiresGrad_(false);
  const purifier = s.purifier();
  const x = rand([batch, 1, 28, 28]);
  const y = randint(0, 10, [batch]);
  const opt = new Adam(purifier.parameters(), { lr: 1e-3 });
  const step = async () => {
    const xAdv = await adversarialBatch(purifier, clf, x, y, {
      attack: s.attack,
      eps: 0.3,
      eot: 1,
      clip: s.objective.clip,
    });
    tidy(() => {
      opt.zeroGrad();
      purifierLoss(purifier, clf, x, y, xAdv, s.objective).loss.backward();
      opt.step();
    });
    xAdv.dispose();
  };
  const rate = await timeitAsync(step, seconds);
  opt.dispose();
  for (const t of [x, y]) t.dispose();
  purifier.dispose();
  clf.dispose();
  return { [s.figure]: batch * rate.wall, [`${s.figure}.perCpuSecond`]: batch * rate.cpu };
}

/** Both settings, one after the other. */
export async function benchPurifier(batch: number, seconds: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of SETTINGS) Object.assign(out, await benchStep(s, batch, seconds));
  return out;
}
