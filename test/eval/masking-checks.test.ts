import { test } from "node:test";
import assert from "node:assert/strict";
import { checkConvergence, checkMonotoneLoss } from "../../src/eval/sanity.js";

test("convergence: a doubled PGD within the tolerance passes, one that lowers accuracy more is a warning", () => {
  const ok = checkConvergence({
    defense: "VAE",
    epsilon: 0.1,
    base: { attack: "PGD(100)x2", accuracy: 0.5 },
    stronger: { attack: "PGD(200)x4", accuracy: 0.495 },
    samples: 1000,
  });
  assert.equal(ok.length, 1);
  assert.equal(ok[0].level, "info");
  assert.match(ok[0].message, /has converged \(change 0.005 < 0.01\)/);
  const bad = checkConvergence({
    defense: "VAE",
    epsilon: 0.1,
    base: { attack: "PGD(100)x2", accuracy: 0.5 },
    stronger: { attack: "PGD(200)x4", accuracy: 0.45 },
    samples: 1000,
  });
  assert.equal(bad[0].level, "warning");
  assert.match(bad[0].message, /had not converged .* lowers accuracy by 0.050/);
  const up = checkConvergence({
    defense: "VAE",
    epsilon: 0.1,
    base: { attack: "a", accuracy: 0.5 },
    stronger: { attack: "b", accuracy: 0.53 },
    samples: 100,
  });
  assert.equal(up[0].level, "warning");
  assert.match(up[0].message, /rises by 0.030/);
});

test("convergence: a change of exactly the tolerance warns however the float subtraction rounds", () => {
  // 0.81 - 0.80 is 0.01000...01 and 0.03 - 0.02 is 0.00999...98: both are a change of one image in 100.
  for (const [base, stronger] of [
    [0.81, 0.8],
    [0.03, 0.02],
    [0.2, 0.21],
  ]) {
    const [finding] = checkConvergence({
      defense: "JPEG 23",
      epsilon: 0.1,
      base: { attack: "PGD(100)x2", accuracy: base },
      stronger: { attack: "PGD(200)x4", accuracy: stronger },
      samples: 100,
    });
    assert.equal(finding.level, "warning", `${base} -> ${stronger}: ${finding.message}`);
  }
  const [within] = checkConvergence({
    defense: "JPEG 23",
    epsilon: 0.1,
    base: { attack: "PGD(100)x2", accuracy: 0.03 },
    stronger: { attack: "PGD(200)x4", accuracy: 0.025 },
    samples: 200,
  });
  assert.equal(within.level, "info");
});

test("monotone loss: a rising trace passes, a falling or oscillating one is a warning", () => {
  const rising = Array.from({ length: 20 }, (_, i) => Math.log(1 + i));
  assert.equal(checkMonotoneLoss(rising, { defense: "d", attack: "PGD", epsilon: 0.1 })[0].level, "info");
  const falling = rising.slice().reverse();
  const f = checkMonotoneLoss(falling, { defense: "d", attack: "PGD", epsilon: 0.1 });
  assert.equal(f[0].level, "warning");
  assert.match(f[0].message, /does not rise monotonically/);
  const bump = [...rising.slice(0, 10), 0, 0, 0, 0, 0, 0, ...rising.slice(10)];
  assert.equal(checkMonotoneLoss(bump, { defense: "d", attack: "PGD", epsilon: 0.1 })[0].level, "warning");
  // EOT noise of a few percent is smoothed away.
  const noisy = rising.map((v, i) => v + (i % 2 === 0 ? 0.02 : -0.02));
  assert.equal(checkMonotoneLoss(noisy, { defense: "d", attack: "PGD", epsilon: 0.1 })[0].level, "info");
  assert.deepEqual(checkMonotoneLoss([1], { defense: "d", attack: "PGD", epsilon: 0.1 }), []);
});

test("monotone loss: a trace no longer than the window is smoothed less, not called flat", () => {
  // PGD(5) with the default 5-step window: a steady rise must pass, a steady fall must not.
  const short = [0.001, 1, 2, 3, 4.084];
  const up = checkMonotoneLoss(short, { defense: "d", attack: "PGD(5)", epsilon: 0.2 });
  assert.equal(up[0].level, "info");
  assert.match(up[0].message, /4-step moving average/);
  assert.equal(
    checkMonotoneLoss(short.slice().reverse(), { defense: "d", attack: "PGD(5)", epsilon: 0.2 })[0].level,
    "warning",
  );
  assert.equal(checkMonotoneLoss([0, 1], { defense: "d", attack: "PGD(2)", epsilon: 0.2 })[0].level, "info");
});
