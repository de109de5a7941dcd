import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULTS,
  loadConfigFile,
  modesOf,
  needsVae,
  parseAttackEntry,
  parseAttackSpec,
  resolveConfig,
  splitDefenseList,
} from "../../src/eval/config.js";
import { RECIPES } from "../../src/eval/reproduce.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** assert.throws on the error's message (not "ArgumentError: ..."), so patterns can be anchored. */
function throwsWith(fn: () => unknown, pattern: RegExp, label?: string): void {
  assert.throws(
    fn,
    (e: Error) => {
      assert.match(e.message, pattern, label);
      return true;
    },
    label,
  );
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("attack specs", () => {
  test("NAME:KEY=VALUE parts become typed parameters, a canonical spec and the attack's own name", () => {
    const pgd = parseAttackSpec("pgd:steps=40:restarts=2");
    assert.equal(pgd.kind, "pgd");
    assert.deepEqual(pgd.params, { steps: 40, restarts: 2 });
    assert.equal(pgd.spec, "pgd:steps=40:restarts=2");
    assert.equal(pgd.name, "PGD(40)x2");
    // Key order and case do not matter; the canonical spec does not change.
    assert.equal(parseAttackSpec(" PGD : RESTARTS=2 : steps=40 ").spec, "pgd:steps=40:restarts=2");
    assert.deepEqual(parseAttackSpec("pgd:randomStart=false").params, { randomStart: false });
    assert.equal(parseAttackSpec("fgsm").name, "FGSM");
    assert.equal(parseAttackSpec("ifgsm:steps=10").name, "I-FGSM(10)");
    assert.equal(parseAttackSpec("square:queries=1000:pInit=0.1").name, "Square(1000)");
    assert.equal(parseAttackSpec("pgd-l2:stepSize=0.1").name, "PGD-L2(40)");
  });

  test("bad specs are rejected with a message naming the bad part", () => {
    const cases: [string, RegExp][] = [
      ["pgdd", /^Unknown attack "pgdd" in attack spec "pgdd"; expected one of fgsm, ifgsm, pgd, pgd-l2, square$/],
      [
        "pgd:stpes=40",
        /^Unknown parameter "stpes" in attack spec "pgd:stpes=40"; pgd takes steps, stepSize, restarts, randomStart, loss$/,
      ],
      ["fgsm:steps=3", /^Unknown parameter "steps" in attack spec "fgsm:steps=3"; fgsm takes no parameters$/],
      ["pgd:steps=x", /^Expected integer for steps in attack spec "pgd:steps=x" but received "x"$/],
      ["pgd:steps=2.5", /^Expected integer for steps in attack spec "pgd:steps=2\.5" but received "2\.5"$/],
      ["pgd:steps", /^Expected KEY=VALUE after ":" in attack spec "pgd:steps" but received "steps"$/],
      ["pgd:", /^Expected KEY=VALUE after ":" in attack spec "pgd:" but received ""$/],
      ["pgd:steps=3:steps=4", /^Parameter "steps" given twice in attack spec "pgd:steps=3:steps=4"$/],
      ["pgd:randomStart=maybe", /^Expected true or false for randomStart in attack spec/],
      // Range and combination checks are the attacks' own, with the spec appended.
      [
        "pgd:steps=0",
        /^Expected integer between 1 and 100000 for steps but received 0 \(in attack spec "pgd:steps=0"\)$/,
      ],
      // Bounded: pgd:steps=1e15 used to run forever.
      ["pgd:steps=1e15", /^Expected integer between 1 and 100000 for steps but received 1000000000000000 /],
      ["pgd:restarts=100000", /^Expected integer between 1 and 1000 for restarts but received 100000 /],
      ["square:queries=1e9", /^Expected integer between 1 and 1000000 for queries but received 1000000000 /],
      [
        "pgd:restarts=3:randomStart=false",
        /needs randomStart = true .*\(in attack spec "pgd:restarts=3:randomStart=false"\)$/,
      ],
      ["square:pInit=2", /for pInit but received 2 \(in attack spec "square:pInit=2"\)$/],
    ];
    for (const [spec, message] of cases) throwsWith(() => parseAttackSpec(spec), message, spec);
  });

  test("config-file entries may be objects; their errors name the entry", () => {
    const a = parseAttackEntry({ name: "pgd", steps: 7, restarts: 2 }, "attacks[0] in run.yaml");
    assert.equal(a.spec, "pgd:steps=7:restarts=2");
    throwsWith(
      () => parseAttackEntry({ name: "pgd", step: 7 }, "attacks[1] in run.yaml"),
      /^Unknown parameter "step" in attacks\[1\] in run\.yaml; pgd takes/,
    );
    throwsWith(() => parseAttackEntry({ steps: 7 }, "attacks[2] in run.yaml"), /"name".*for attacks\[2\] in run\.yaml/);
    throwsWith(() => parseAttackEntry(3, "attacks[3] in run.yaml"), /for attacks\[3\] in run\.yaml but received 3/);
  });
});

describe("defense lists", () => {
  test("commas inside a spec stay with it; a misspelt name stays on its own", () => {
    assert.deepEqual(splitDefenseList("none,jpeg:23,vae,median:3,bits:4,gauss:1"), [
      "none",
      "jpeg:23",
      "vae",
      "median:3",
      "bits:4",
      "gauss:1",
    ]);
    assert.deepEqual(splitDefenseList("vae:samples=8,clip=2,jpeg:23,gauss:1.0,5"), [
      "vae:samples=8,clip=2",
      "jpeg:23",
      "gauss:1.0,5",
    ]);
    assert.deepEqual(splitDefenseList("none,jpge"), ["none", "jpge"]);
  });

  test("needsVae sees vae inside an ensemble", () => {
    assert.equal(needsVae("vae:samples=4"), true);
    assert.equal(needsVae("ensemble:jpeg:23+vae"), true);
    assert.equal(needsVae("ensemble:jpeg:23+bits:4"), false);
    assert.equal(needsVae("jpeg:23"), false);
  });
});

describe("resolveConfig", () => {
  const cwd = join(dir, "cwd");
  mkdirSync(cwd, { recursive: true });

  test("defaults, with only the classifier given", () => {
    const c = resolveConfig({ classifier: "clf.safetensors" }, { cwd });
    assert.equal(c.dataset, "mnist");
    assert.equal(c.classifier, join(cwd, "clf.safetensors"));
    assert.equal(c.samples, DEFAULTS.samples);
    assert.deepEqual(c.defenses, ["none", "jpeg:23"]);
    assert.deepEqual(
      c.attacks.map((a) => a.name),
      ["FGSM", "PGD(40)", "Square(1000)"],
    );
    assert.deepEqual(c.eps, RECIPES.mnist.epsilons);
    assert.equal(c.mode, "both");
    assert.deepEqual(modesOf(c.mode), ["gray-box", "adaptive"]);
    assert.equal(c.out, join(cwd, "runs", "evaluate-mnist"));
    // With a VAE the default defenses include it.
    assert.deepEqual(resolveConfig({ classifier: "c", vae: "v" }, { cwd }).defenses, ["none", "jpeg:23", "vae"]);
  });

  test("a JSON config file; relative paths from the file's folder; flags override it", () => {
    const cfg = file(
      "run.json",
      JSON.stringify({
        dataset: "fashion-mnist",
        classifier: "ck/clf.safetensors",
        vae: "ck/vae.safetensors",
        defenses: ["none", "vae:samples=2,clip=3", "median:3"],
        attacks: ["fgsm", { name: "pgd", steps: 5, restarts: 2 }],
        eps: [0, 0.1],
        mode: "adaptive",
        eot: 4,
        passes: 3,
        seed: 7,
        samples: 20,
        "batch-size": 8,
        out: "out",
      }),
    );
    const c = resolveConfig({}, { configFile: cfg, cwd });
    assert.equal(c.dataset, "fashion-mnist");
    assert.equal(c.classifier, join(dir, "ck", "clf.safetensors"));
    assert.equal(c.vae, join(dir, "ck", "vae.safetensors"));
    assert.equal(c.out, join(dir, "out"));
    assert.deepEqual(c.defenses, ["none", "vae:samples=2,clip=3", "median:3"]);
    assert.deepEqual(
      c.attacks.map((a) => a.spec),
      ["fgsm", "pgd:steps=5:restarts=2"],
    );
    assert.deepEqual(
      [c.eps, c.mode, c.eot, c.passes, c.seed, c.samples, c.batchSize],
      [[0, 0.1], "adaptive", 4, 3, 7, 20, 8],
    );

    const o = resolveConfig(
      { eps: "0,0.2,0.3", mode: "both", seed: "3", attacks: "square:queries=10", out: "here", samples: "all" },
      { configFile: cfg, cwd },
    );
    assert.deepEqual(o.eps, [0, 0.2, 0.3]);
    assert.equal(o.mode, "both");
    assert.equal(o.seed, 3);
    assert.equal(o.samples, undefined);
    assert.deepEqual(
      o.attacks.map((a) => a.spec),
      ["square:queries=10"],
    );
    assert.equal(o.out, join(cwd, "here"), "a path on the command line is taken from the working folder");
    assert.equal(o.eot, 4, "what the flags leave alone comes from the file");
  });

  test("a YAML config file gives the same settings as the JSON one", () => {
    const yaml = file(
      "run.yaml",
      [
        "# evaluation of the tiny models",
        "dataset: fashion-mnist",
        "classifier: ck/clf.safetensors",
        "vae: ck/vae.safetensors",
        "defenses: [none, 'vae:samples=2,clip=3', 'median:3']",
        "attacks:",
        "  - fgsm",
        "  - {name: pgd, steps: 5, restarts: 2}",
        "eps: [0, 0.1]",
        "mode: adaptive",
        "eot: 4",
        "passes: 3",
        "seed: 7",
        "samples: 20",
        "batch-size: 8",
        "out: out",
      ].join("\n"),
    );
    const fromYaml = resolveConfig({}, { configFile: yaml, cwd });
    const fromJson = resolveConfig({}, { configFile: join(dir, "run.json"), cwd });
    assert.deepEqual(fromYaml, fromJson);
    // Strings are lists too.
    const s = file("strings.yml", "classifier: c\neps: 0, 0.05\nattacks: fgsm,ifgsm:steps=3\ndefenses: none,bits:4\n");
    const c = resolveConfig({}, { configFile: s, cwd });
    assert.deepEqual(c.eps, [0, 0.05]);
    assert.deepEqual(c.defenses, ["none", "bits:4"]);
    assert.deepEqual(
      c.attacks.map((a) => a.name),
      ["FGSM", "I-FGSM(3)"],
    );
  });

  test("config files: unknown keys, command-line-only keys, syntax errors and bad values", () => {
    const bad: [string, string, RegExp][] = [
      ["a.yaml", "classifier: c\nbatchSize: 3\n", /a\.yaml: unknown key "batchSize"; did you mean "batch-size"\?/],
      ["b.yaml", "classifier: c\nepsilon: [0]\n", /b\.yaml: unknown key "epsilon" \(known keys: dataset, data-dir/],
      ["c.json", '{"classifier": "c", "restart": true}', /c\.json: "restart" is a command-line option \(--restart\)/],
      [
        "d.yaml",
        "classifier: c\neps: [0, 1.5]\n",
        /^Expected number between 0 and 1 for "eps" in .*d\.yaml but received 1\.5$/,
      ],
      [
        "e.yaml",
        "classifier: c\nattacks: [fgsm, {name: pgd, stepz: 3}]\n",
        /Unknown parameter "stepz" in attacks\[1\] in .*e\.yaml/,
      ],
      ["f.yaml", "classifier: c\neps: [0, 0.1\n", /f\.yaml: not valid YAML at line \d+, column \d+/],
      ["g.json", '{"classifier": "c",}', /g\.json: not valid JSON/],
      ["h.toml", "classifier = 'c'", /h\.toml: expected a config file ending in \.json, \.yaml or \.yml/],
      ["i.yaml", "- classifier\n", /i\.yaml: expected a mapping of settings/],
      [
        "j.yaml",
        "classifier: c\nmode: white-box\n",
        /one of "gray-box", "adaptive", "both" for "mode" in .*j\.yaml but received "white-box"/,
      ],
      ["k.yaml", "classifier: c\npasses: 0\n", /integer between 1 and 10000 for "passes" in .*k\.yaml but received 0/],
      [
        "escape.yaml",
        "classifier: ../../etc/passwd\n",
        /"classifier" in .*escape\.yaml is "\.\.\/\.\.\/etc\/passwd", which lies outside the config file's folder .*; give it on the command line \(--classifier\) instead/,
      ],
      [
        "abs.yaml",
        "classifier: c\nout: /tmp/elsewhere\n",
        /"out" in .*abs\.yaml is "\/tmp\/elsewhere", which lies outside/,
      ],
    ];
    for (const [name, text, message] of bad) {
      const p = file(name, text);
      throwsWith(() => resolveConfig({}, { configFile: p, cwd }), message, name);
      // Every message is one line.
      try {
        resolveConfig({}, { configFile: p, cwd });
      } catch (e) {
        assert.equal((e as Error).message.split("\n").length, 1, name);
      }
    }
    throwsWith(
      () => loadConfigFile(join(dir, "missing.yaml")),
      /missing\.yaml: cannot read the config file \(ENOENT\)/,
    );
  });

  test("command-line values are validated with the flag's name", () => {
    const base = { classifier: "c" };
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ eps: "0,2" }, /^Expected number between 0 and 1 for --eps but received "2"$/],
      [{ eps: "0,-0.1" }, /for --eps but received "-0\.1"/],
      [{ eps: "0,0.1,0.1" }, /^Epsilon 0\.1 is listed twice in --eps$/],
      [{ defenses: "none,vae" }, /^Defense spec "vae" needs a VAE: pass --vae/],
      [{ defenses: "ensemble:jpeg:23+vae" }, /^Defense spec "ensemble:jpeg:23\+vae" needs a VAE/],
      [{ defenses: "none,jpg:3" }, /^Unknown defense "jpg" in defense spec "jpg:3" \(--defenses\)/],
      [{ defenses: "jpeg:0" }, /quality but received 0 \(in defense spec "jpeg:0"\)/],
      [{ defenses: "patchvae:16/8" }, /needs patch VAEs/],
      [{ defenses: "none,none" }, /^Defense "none" is listed twice$/],
      [{ attacks: "fgsm,fgsm" }, /^Attack "fgsm" is listed twice$/],
      [{ attacks: "fgsm,pgd:stpes=3" }, /^Unknown parameter "stpes" in attack spec "pgd:stpes=3"/],
      [{ mode: "grey" }, /for --mode but received "grey"/],
      [{ dataset: "imagenet" }, /"mnist", "fashion-mnist", "cifar10" for --dataset but received "imagenet"/],
      [{ eot: "0" }, /integer between 1 and 10000 for --eot but received "0"/],
      [{ eot: "100000" }, /integer between 1 and 10000 for --eot but received "100000"/],
      [{ "batch-size": "1000000" }, /integer between 1 and 65536 for --batch-size but received "1000000"/],
      [{ samples: "ten" }, /integer of at least 1 for --samples but received "ten"/],
      [{ "batch-size": "1.5" }, /for --batch-size but received "1\.5"/],
    ];
    for (const [flags, message] of bad) {
      throwsWith(() => resolveConfig({ ...base, ...flags }, { cwd }), message, JSON.stringify(flags));
    }
    throwsWith(() => resolveConfig({}, { cwd }), /^--classifier is required/);
  });

  test("two attacks with the same table name are told apart by their specs", () => {
    const c = resolveConfig({ classifier: "c", attacks: "pgd,pgd:stepSize=0.01" }, { cwd });
    assert.deepEqual(
      c.attacks.map((a) => a.name),
      ["PGD(40) [pgd]", "PGD(40) [pgd:stepSize=0.01]"],
    );
  });
});
