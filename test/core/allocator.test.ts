import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { binding } from "../../src/binding.js";
import { tidy } from "../../src/core/engine.js";
import { ones } from "../../src/core/tensor.js";

const cacheOn = () => binding.allocatorSettings().cacheBytes > 0;

test(
  "freed large blocks are reused: a loop of 25 MB tensors stops faulting in fresh pages",
  { skip: !cacheOn() },
  () => {
    const x = ones([256, 32, 28, 28]);
    try {
      const step = () => tidy(() => x.relu().add(1).sum().item());
      for (let i = 0; i < 3; i++) step();
      const before = process.resourceUsage().minorPageFault;
      for (let i = 0; i < 20; i++) assert.equal(step(), 2 * 256 * 32 * 28 * 28);
      const perStep = (process.resourceUsage().minorPageFault - before) / 20;
      // Without the cache each step maps two 25.7 MB blocks afresh: about 12,500 faults of 4 KiB pages.
      assert.ok(perStep < 500, `${perStep} page faults per step`);
    } finally {
      x.dispose();
    }
  },
);

/** Three Adam steps of the MNIST CNN and a VAE validation pass in a child process, with the given cache size. */
function childRun(cacheMb: string): string {
  const src = fileURLToPath(new URL("../../src/", import.meta.url));
  const script = `
    const { manualSeed, setNumThreads, tidy } = await import(${JSON.stringify(src + "core/engine.js")});
    const { rand, randint } = await import(${JSON.stringify(src + "core/tensor.js")});
    const { MnistCnn } = await import(${JSON.stringify(src + "models/classifiers.js")});
    const { ConvVae, VAE_PRESETS } = await import(${JSON.stringify(src + "models/vae.js")});
    const { crossEntropy } = await import(${JSON.stringify(src + "nn/functional.js")});
    const { Adam } = await import(${JSON.stringify(src + "optim/optimizer.js")});
    const { binding } = await import(${JSON.stringify(src + "binding.js")});
    setNumThreads(1);
    manualSeed(7);
    const m = new MnistCnn();
    const opt = new Adam(m.parameters(), { lr: 1e-3 });
    const x = rand([128, 1, 28, 28]);
    const y = randint(0, 10, [128]);
    const out = [];
    for (let i = 0; i < 3; i++)
      out.push(tidy(() => { opt.zeroGrad(); const l = crossEntropy(m.forward(x), y); l.backward(); opt.step(); return l.item(); }));
    const v = new ConvVae(VAE_PRESETS.mnist);
    v.eval();
    out.push(tidy(() => v.loss(rand([256, 1, 28, 28])).loss.item()));
    console.log(JSON.stringify({ cacheBytes: binding.allocatorSettings().cacheBytes, out }));
  `;
  const env = { ...process.env, VAEGUARD_CPU_CACHE_MB: cacheMb };
  return execFileSync(process.execPath, ["--input-type=module", "-e", script], { env, encoding: "utf8" });
}

test("the cache changes no result: the same training steps with and without it", { skip: !cacheOn() }, () => {
  const a = JSON.parse(childRun("0")) as { cacheBytes: number; out: number[] };
  const b = JSON.parse(childRun("256")) as { cacheBytes: number; out: number[] };
  assert.equal(a.cacheBytes, 0);
  assert.equal(b.cacheBytes, 256 * 2 ** 20);
  assert.deepEqual(b.out, a.out);
});
