import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ATTACK_DESCRIPTIONS,
  ATTACK_NAMES,
  createAttack,
  describeAttacks,
  FGSM,
  IFGSM,
  isAttackName,
  PGD,
  SquareAttack,
} from "../../src/attacks/index.js";
import { LinearModel } from "./helpers.js";

describe("attack registry", () => {
  const model = new LinearModel(
    [
      [1, 0],
      [0, 1],
    ],
    [0, 0],
  );

  it("builds every attack by name with its defaults", () => {
    const fgsm = createAttack("fgsm", model, { eps: 0.1 });
    assert.ok(fgsm instanceof FGSM);
    const ifgsm = createAttack("ifgsm", model, { eps: 0.1 });
    assert.ok(ifgsm instanceof IFGSM);
    assert.equal(ifgsm.describe().steps, 10);
    const pgd = createAttack("pgd", model, { eps: 0.1 });
    assert.ok(pgd instanceof PGD);
    assert.equal(pgd.norm, "Linf");
    assert.equal(pgd.describe().steps, 40);
    const pgdL2 = createAttack("pgd-l2", model, { eps: 1.5 });
    assert.ok(pgdL2 instanceof PGD);
    assert.equal(pgdL2.norm, "L2");
    assert.equal(pgdL2.eps, 1.5);
    const square = createAttack("square", model, { eps: 0.1 });
    assert.ok(square instanceof SquareAttack);
    assert.equal(square.describe().queries, 1000);
    for (const a of [fgsm, ifgsm, pgd, pgdL2, square]) {
      assert.equal(a.supportsTargeted, true);
      assert.equal(typeof a.describe().eotSamples, "number");
    }
  });

  it("rejects unknown names and contradictory options with clear messages", () => {
    assert.throws(
      () => createAttack("cw", model, { eps: 0.1 }),
      /Expected one of "fgsm", "ifgsm", "pgd", "pgd-l2", "square" for attack but received "cw"/,
    );
    assert.throws(() => createAttack("pgd-l2", model, { eps: 1, norm: "Linf" } as never), /use "pgd" for norm "Linf"/);
    assert.throws(() => createAttack("fgsm", model, { eps: 0.1, step: 2 } as never), /Unknown option "step" for FGSM/);
    assert.throws(() => createAttack("fgsm", model, undefined as never), /Expected an options object for FGSM/);
  });

  it("lists every attack with a one-line description for --help", () => {
    const text = describeAttacks();
    const lines = text.split("\n");
    assert.equal(lines.length, ATTACK_NAMES.length);
    for (const [i, name] of ATTACK_NAMES.entries()) {
      assert.ok(lines[i].trimStart().startsWith(name));
      assert.ok(lines[i].includes(ATTACK_DESCRIPTIONS[name]));
      assert.ok(isAttackName(name));
    }
    assert.equal(isAttackName("nope"), false);
  });
});
