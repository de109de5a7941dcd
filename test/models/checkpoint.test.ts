/**
 * Checkpoints: round trip with optimizer and training state, and the message
 * for each way a file can fail to fit (missing, not ours, other architecture,
 * missing or unexpected key, wrong shape, bad metadata, other optimizer). Every
 * message names the file; no tensor leaks on any path.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, tidy } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import { zeros, type Tensor } from "../../src/core/tensor.js";
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from "../../src/io/safetensors.js";
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint, stripOptimizerState } from "../../src/models/checkpoint.js";
import { ConvVae } from "../../src/models/vae.js";
import { Adam, SGD } from "../../src/optim/optimizer.js";
import { assertThrowsWith, leakFree } from "../helpers/assert.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-checkpoint-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = {
  inputShape: [1, 8, 8] as [number, number, number],
  encoder: [{ channels: 2, pool: true }],
  latentDim: 3,
};

function tinyVae(): ConvVae {
  manualSeed(1);
  return new ConvVae(CONFIG);
}

/** Rewrite a saved checkpoint with its tensors and metadata changed by `edit`. */
function rewrite(
  from: string,
  to: string,
  edit: (tensors: Map<string, Tensor>, metadata: Record<string, string>) => void,
): void {
  const { tensors, metadata } = loadSafetensors(from);
  const owned = [...tensors.values()];
  edit(tensors, metadata);
  saveSafetensors(to, tensors, metadata);
  for (const t of [...owned, ...tensors.values()]) t.dispose();
}

describe("checkpoints", () => {
  const good = join(dir, "vae.safetensors");

  test(
    "a model, its optimizer state and training progress come back as saved",
    leakFree(() => {
      const vae = tinyVae();
      const opt = new Adam(vae.parameters(), { lr: 0.01 });
      saveCheckpoint(good, vae, { optimizer: opt, training: { epoch: 3 }, info: { note: "test" } });
      const loaded = loadCheckpoint<ConvVae>(good, {
        expectArch: ConvVae.arch,
        optimizer: (m) => new Adam(m.parameters()),
      });
      assert.equal(loaded.arch, ConvVae.arch);
      assert.deepEqual(loaded.training, { epoch: 3 });
      assert.deepEqual(loaded.info, { note: "test" });
      assert.equal(loaded.optimizer!.lr, 0.01, "optimizer scalars restored");
      const a = vae.stateDict();
      for (const [name, t] of loaded.model.stateDict()) assert.deepEqual(t.toArray(), a.get(name)!.toArray(), name);
      for (const m of [vae, loaded.model]) m.dispose();
      for (const o of [opt, loaded.optimizer!]) o.dispose();
    }),
  );

  test(
    "a copy without optimizer state keeps the weights, history and info, and loads with a fresh optimizer",
    leakFree(() => {
      const vae = tinyVae();
      const opt = new Adam(vae.parameters(), { lr: 0.01 });
      // One step, so that Adam holds its moments.
      opt.zeroGrad();
      tidy(() => vae.loss(zeros([2, 1, 8, 8]).add(0.5)).loss.backward());
      opt.step();
      opt.zeroGrad();
      const full = join(dir, "vae-full.safetensors");
      const slim = join(dir, "vae-slim.safetensors");
      saveCheckpoint(full, vae, { optimizer: opt, training: { epoch: 2 }, info: { note: "slim" } });
      const counts = stripOptimizerState(full, slim);
      assert.equal(counts.kept, vae.stateDict().size);
      assert.ok(counts.dropped > 0, "Adam's moments were in the full checkpoint");
      assert.ok(statSync(slim).size < statSync(full).size);
      const meta = readSafetensorsMetadata(slim);
      assert.equal(meta.optimizer, undefined);
      assert.deepEqual(
        { ...meta, optimizer: undefined },
        { ...readSafetensorsMetadata(full), optimizer: undefined },
        "every other metadata entry as it was",
      );
      const loaded = loadCheckpoint<ConvVae>(slim, {
        expectArch: ConvVae.arch,
        optimizer: (m) => new Adam(m.parameters(), { lr: 0.5 }),
      });
      assert.deepEqual(loaded.training, { epoch: 2 });
      assert.deepEqual(loaded.info, { note: "slim" });
      assert.equal(loaded.optimizer!.lr, 0.5, "no saved state: the optimizer as made");
      const a = vae.stateDict();
      for (const [name, t] of loaded.model.stateDict()) assert.deepEqual(t.toArray(), a.get(name)!.toArray(), name);
      // Not a checkpoint: refused, naming the file; nothing written.
      const plain = join(dir, "plain.safetensors");
      const out = join(dir, "never.safetensors");
      const w = zeros([2]);
      saveSafetensors(plain, { w });
      w.dispose();
      const err = assertThrowsWith(() => stripOptimizerState(plain, out), CheckpointError, /not a vaeguard checkpoint/);
      assert.ok(err.message.includes(plain), "the message names the file");
      assert.throws(() => statSync(out), /ENOENT/);
      for (const m of [vae, loaded.model]) m.dispose();
      for (const o of [opt, loaded.optimizer!]) o.dispose();
    }),
  );

  test(
    "each kind of misfit is one CheckpointError that names the file and the problem",
    leakFree(() => {
      const vae = tinyVae();
      saveCheckpoint(good, vae);
      vae.dispose();
      const bad = (name: string) => join(dir, name);
      rewrite(good, bad("missing.safetensors"), (t) => {
        t.get("fcMu.bias")!.dispose();
        t.delete("fcMu.bias");
      });
      rewrite(good, bad("extra.safetensors"), (t) => t.set("extra.weight", zeros([2])));
      rewrite(good, bad("shape.safetensors"), (t) => {
        t.get("fcMu.bias")!.dispose();
        t.set("fcMu.bias", zeros([4]));
      });
      rewrite(good, bad("format.safetensors"), (_t, m) => (m.format = "something-else"));
      rewrite(good, bad("config.safetensors"), (_t, m) => (m.config = "{not json"));
      rewrite(good, bad("arch.safetensors"), (_t, m) => (m.arch = "no-such-arch"));
      writeFileSync(bad("garbage.safetensors"), "not a safetensors file at all");
      const cases: [string, RegExp, { expectArch?: string }?][] = [
        [bad("absent.safetensors"), /absent\.safetensors: no such checkpoint file$/],
        [bad("missing.safetensors"), /missing\.safetensors: missing tensor 'fcMu\.bias' \(expected shape \[3\]\)$/],
        [bad("extra.safetensors"), /extra\.safetensors: unexpected tensor 'extra\.weight' for this model$/],
        [
          bad("shape.safetensors"),
          /shape\.safetensors: tensor 'fcMu\.bias' has shape \[4\] but this model needs \[3\]$/,
        ],
        [
          bad("format.safetensors"),
          new RegExp(`format\\.safetensors: not a vaeguard checkpoint \\(metadata format is "something-else"\\)$`),
        ],
        [bad("config.safetensors"), /config\.safetensors: its 'config' metadata is not valid JSON$/],
        [
          bad("arch.safetensors"),
          /arch\.safetensors: its metadata names the architecture "no-such-arch", which vaeguard does not know \(known: .*conv-vae.*\)$/,
        ],
        [
          good,
          /vae\.safetensors: holds a 'conv-vae' model but a 'mnist-cnn' model is needed here$/,
          { expectArch: "mnist-cnn" },
        ],
        [bad("garbage.safetensors"), /garbage\.safetensors: /],
      ];
      for (const [file, message, options] of cases) {
        const e = assertThrowsWith(() => loadCheckpoint(file, options), CheckpointError, message);
        assert.equal((e as CheckpointError).file, file);
      }
      assert.equal(CHECKPOINT_FORMAT, "vaeguard-checkpoint/1");
    }),
  );

  test(
    "optimizer state for another optimizer is refused, and the rebuilt model is not leaked",
    leakFree(() => {
      const vae = tinyVae();
      const opt = new Adam(vae.parameters());
      saveCheckpoint(good, vae, { optimizer: opt });
      let made: SGD | undefined;
      assertThrowsWith(
        () =>
          loadCheckpoint<ConvVae>(good, {
            optimizer: (m) => {
              made = new SGD(m.parameters(), { lr: 0.1 });
              return made;
            },
          }),
        CheckpointError,
        /optimizer state is for Adam, not SGD$/,
      );
      made?.dispose();
      vae.dispose();
      opt.dispose();
    }),
  );
});
