/** The defense registry: specs to defenses, clear errors naming the bad part, listings. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ArgumentError, ShapeError } from "../../src/core/errors.js";
import { rand } from "../../src/core/tensor.js";
import {
  BitDepthDefense,
  DEFENSE_NAMES,
  EnsembleDefense,
  GaussianBlurDefense,
  JpegDefense,
  MedianDefense,
  NoDefense,
  PatchVaeDefense,
  VaeDefense,
  createDefense,
  describeDefenseParams,
  describeDefenses,
  listDefenses,
} from "../../src/defenses/index.js";
import { leakFree } from "../helpers/assert.js";
import { tinyVae } from "./helpers.js";

const vae = tinyVae([1, 8, 8], 1);
const p16 = tinyVae([3, 16, 16], 2);
const p32 = tinyVae([3, 32, 32], 3);
const p64 = tinyVae([3, 64, 64], 4, 4);
const ctx = { vae, patchVaes: { "16": p16, patch32: p32, other: p64 } };
after(() => [vae, p16, p32, p64].forEach((v) => v.dispose()));

describe("createDefense", () => {
  test(
    "builds each kind of defense from its spec",
    leakFree(() => {
      assert.ok(createDefense("none") instanceof NoDefense);
      const j = createDefense("jpeg:23");
      assert.ok(j instanceof JpegDefense);
      assert.equal(j.name, "JPEG 23");
      assert.equal(createDefense("jpeg").name, "JPEG 23");
      assert.equal(createDefense("JPEG:quality=10").name, "JPEG 10");
      const v = createDefense("vae", ctx) as VaeDefense;
      assert.ok(v instanceof VaeDefense);
      assert.deepEqual([v.name, v.samples, v.clip, v.deterministic, v.randomized], ["VAE", 1, 5, false, true]);
      const k = createDefense("vae:samples=8", ctx) as VaeDefense;
      assert.equal(k.samples, 8);
      const d = createDefense("vae:deterministic", ctx) as VaeDefense;
      assert.deepEqual([d.deterministic, d.randomized], [true, false]);
      assert.equal((createDefense("vae:clip=2.5,samples=2", ctx) as VaeDefense).clip, 2.5);
      const b = createDefense("bits:4") as BitDepthDefense;
      assert.ok(b instanceof BitDepthDefense);
      assert.equal(b.bits, 4);
      const m = createDefense("median:3") as MedianDefense;
      assert.deepEqual([m.size, m.padding], [3, "symmetric"]);
      assert.equal((createDefense("median:5,padding=reflect") as MedianDefense).padding, "reflect");
      const g = createDefense("gauss:1.0") as GaussianBlurDefense;
      assert.deepEqual([g.sigma, g.kernelSize], [1, 9]);
      assert.equal((createDefense("gauss:2,7") as GaussianBlurDefense).kernelSize, 7);
    }),
  );

  test(
    "the one spec grammar: arguments separated by ':'; the old ',' syntax still works, with a deprecation warning",
    leakFree(async () => {
      // Warnings of earlier tests' old-syntax specs arrive on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
      const warnings: Error[] = [];
      const listen = (w: Error) => warnings.push(w);
      process.on("warning", listen);
      try {
        const c = createDefense("patchvae:32/16:nosmooth:deterministic:chunk=100", ctx) as PatchVaeDefense;
        assert.deepEqual([c.vae, c.stride, c.smoothing, c.deterministic, c.chunkSize], [p32, 16, false, true, 100]);
        assert.deepEqual((createDefense("gauss:2:7:padding=reflect") as GaussianBlurDefense).kernelSize, 7);
        assert.equal((createDefense("vae:clip=2:samples=3", ctx) as VaeDefense).name, "VAE (K=3, clip 2)");
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(warnings.length, 0, "the new syntax does not warn");
        const old = createDefense("vae:clip=2,samples=3", ctx) as VaeDefense;
        assert.equal(old.name, "VAE (K=3, clip 2)");
        createDefense("vae:clip=2,samples=3", ctx);
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(warnings.length, 1, "one warning per spec");
        assert.equal(warnings[0].name, "DeprecationWarning");
        assert.match(
          warnings[0].message,
          /spec "vae:clip=2,samples=3" separates its arguments with ","; .* write "vae:clip=2:samples=3"/,
        );
      } finally {
        process.off("warning", listen);
      }
    }),
  );

  test(
    "patch VAEs are found by patch size, key or input shape",
    leakFree(() => {
      const a = createDefense("patchvae:64/32", ctx) as PatchVaeDefense;
      assert.ok(a instanceof PatchVaeDefense);
      assert.deepEqual([a.vae, a.patchSize, a.stride, a.smoothing, a.name], [p64, 64, 32, true, "VAE 64x64 s32"]);
      const b = createDefense("patchvae:16", ctx) as PatchVaeDefense;
      assert.deepEqual([b.vae, b.stride], [p16, 16]);
      const c = createDefense("patchvae:32/16,nosmooth,deterministic,chunk=100", ctx) as PatchVaeDefense;
      assert.deepEqual([c.vae, c.smoothing, c.deterministic, c.chunkSize], [p32, false, true, 100]);
      assert.equal((createDefense("patchvae:16,stride=8,smooth=false", ctx) as PatchVaeDefense).stride, 8);
    }),
  );

  test(
    "ensembles of specs joined by +",
    leakFree(() => {
      const e = createDefense("ensemble:patchvae:16/16+patchvae:32/32", ctx) as EnsembleDefense;
      assert.ok(e instanceof EnsembleDefense);
      assert.deepEqual(
        e.members.map((m) => m.name),
        ["VAE 16x16 s16", "VAE 32x32 s32"],
      );
      const paper = createDefense("ensemble:patchvae:16/16+patchvae:32/32+patchvae:64/32+patchvae:64/64", ctx);
      assert.equal((paper as EnsembleDefense).members.length, 4);
      assert.equal(createDefense("ensemble:jpeg:10+median:3").gradient, "bpda-identity");
    }),
  );

  test(
    "errors name the bad part of the spec",
    leakFree(() => {
      const bad: [string, RegExp][] = [
        ["foo:3", /Unknown defense "foo" in defense spec "foo:3"; expected one of none, jpeg, vae/],
        [
          "jpeg:0",
          /^ArgumentError: Expected integer between 1 and 100 for quality but received 0 \(in defense spec "jpeg:0"\)$/,
        ],
        ["jpeg:101", /for quality but received 101/],
        ["jpeg:0.5", /^ArgumentError: Expected integer for quality in defense spec "jpeg:0.5" but received "0.5"$/],
        ["jpeg:2x", /for quality in defense spec "jpeg:2x" but received "2x"/],
        ["jpeg:high", /Unknown flag "high" in defense spec "jpeg:high"/],
        ["jpeg:23,50", /Too many values in defense spec "jpeg:23,50"/],
        ["jpeg:", /Missing arguments after ":" in defense spec "jpeg:"/],
        ["vae:samples=0", /for samples but received 0 \(in defense spec "vae:samples=0"\)/],
        [
          "vae:sample=8",
          /Unknown parameter "sample" in defense spec "vae:sample=8"; vae takes clip, deterministic, samples$/,
        ],
        [
          "patchvae:48/16",
          /needs a VAE for 48x48 patches in patchVaes \(key "48" or "patch48"\); available: 16 \(3x16x16\)/,
        ],
        ["patchvae:64/65", /Expected integer between 1 and 64 for stride but received 65/],
        [
          "patchvae:64-32",
          /Expected patch size and stride as P\/S \(e\.g\. 64\/32\) for the geometry in defense spec "patchvae:64-32"/,
        ],
        ["patchvae", /needs the patch size, as patchvae:P\/S/],
        ["ensemble:jpeg:10", /an ensemble needs two or more members separated by "\+"/],
        ["ensemble:jpeg:10+", /an ensemble needs two or more members/],
        ["ensemble:jpeg:10+foo", /Unknown defense "foo" in defense spec "foo"/],
        ["median:3,padding=wrap", /for padding but received "wrap" \(in defense spec "median:3,padding=wrap"\)/],
        ["gauss:0", /for sigma but received 0/],
        ["bits:9", /Expected integer between 1 and 8 for bits but received 9/],
        ["", /Expected non-empty defense spec for defense/],
      ];
      for (const [spec, re] of bad) {
        assert.throws(
          () => createDefense(spec, ctx),
          (e: unknown) => e instanceof ArgumentError && re.test(String(e)),
          spec,
        );
      }
      assert.throws(() => createDefense("vae"), /Defense spec "vae" needs a VAE \(ctx.vae\) but none was given/);
      assert.throws(() => createDefense("patchvae:16/8"), /none was given/);
      const odd = { patchVaes: { "16": tinyVae([3, 16, 8], 5) } };
      assert.throws(
        () => createDefense("patchvae:16", odd),
        (e: unknown) => e instanceof ShapeError && /square patches/.test(String(e)),
      );
      odd.patchVaes["16"].dispose();
    }),
  );

  test(
    "a built defense works on a batch",
    leakFree(async () => {
      const x = rand([2, 3, 40, 40]);
      for (const spec of [
        "none",
        "jpeg:23",
        "bits:4",
        "median:3",
        "gauss:1.0",
        "patchvae:16/8",
        "ensemble:patchvae:16/16+patchvae:32/32",
      ]) {
        const y = await createDefense(spec, ctx).apply(x);
        assert.deepEqual(y.shape, x.shape, spec);
        y.dispose();
      }
      x.dispose();
    }),
  );
});

describe("listDefenses", () => {
  test(
    "one line per defense, each with a syntax and a description",
    leakFree(() => {
      const list = listDefenses();
      assert.deepEqual(
        list.map((d) => d.name),
        [...DEFENSE_NAMES],
      );
      for (const d of list) {
        assert.ok(d.description.length > 10 && !d.description.includes("\n"), d.name);
        assert.ok(d.syntax.startsWith(d.name), d.name);
      }
      assert.equal(describeDefenses().split("\n").length, DEFENSE_NAMES.length);
      assert.deepEqual(
        list.filter((d) => ["jpeg", "patchvae", "vae"].includes(d.name)).map((d) => d.syntax),
        ["jpeg[:QUALITY]", "vae[:KEY=VALUE...]", "patchvae:P/S[:KEY=VALUE...]"],
      );
      // Every spec parameter, with its range and default, read from the defenses' declarations.
      const params = describeDefenseParams();
      assert.match(
        params,
        /^ {2}jpeg\n {4}QUALITY or quality=N +libjpeg quality \(the paper: 10 and 23\) \(integer between 1 and 100; default 23\)$/m,
      );
      assert.match(
        params,
        /chunk=N +most patches per VAE call \(memory only\) \(integer of at least 1; default about 4M/,
      );
    }),
  );
});
