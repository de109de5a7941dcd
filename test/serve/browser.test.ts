/**
 * The page in a real browser: Debian's chromium, headless, driven by
 * playwright-core against a real server listening on 127.0.0.1 (port 0).
 * Load, pick a digit, run an attack and see the three images with
 * predictions (gray-box and adaptive), upload a file, and see the error for
 * a non-image. Skipped, with a message, only where no chromium binary exists
 * (scripts/setup.sh installs Debian's chromium).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import type { Server } from "../../src/serve/server.js";
import { digitImage, makeFixture, makeServer, type Fixture } from "./helpers.js";

const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p),
);
const skip = CHROMIUM === undefined ? "no chromium binary (apt-get install chromium, or set CHROMIUM_PATH)" : false;

let f: Fixture;
let server: Server;
let browser: Browser;
let page: Page;
let url = "";

before(async () => {
  if (skip) return;
  f = makeFixture(["vae", "jpeg:23"]);
  server = makeServer(f, {
    results: {
      metadata: {
        dataset: "MNIST test set, first 10 images",
        labelSource: "true labels",
        samples: 10,
        seed: 0,
        command: "vaeguard evaluate (test fixture)",
        versions: {},
        attackParams: {},
        createdAt: "2026-01-01T00:00:00Z",
      },
      rows: [0, 0.1, 0.2].map((epsilon, i) => ({
        attack: "FGSM",
        mode: "gray-box" as const,
        epsilon,
        relL2: epsilon,
        accuracy: { "No Def": 1 - 0.4 * i, VAE: 1 - 0.1 * i },
      })),
    },
  });
  url = await server.listen(0, "127.0.0.1");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage();
  page.setDefaultTimeout(60000);
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await server?.close();
  f?.cleanup();
});

test("the page loads, shows the models and the first test digit with its classification", { skip }, async () => {
  const failed: string[] = [];
  page.on("pageerror", (e) => failed.push(e.message));
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]");
  assert.match(
    (await page.textContent("#model-info")) ?? "",
    /classifier\.safetensors \(1x28x28, 10 classes\); defenses: No defense, VAE, JPEG 23/,
  );
  assert.match((await page.textContent("#source-caption")) ?? "", /test digit #0, true label \d/);
  assert.equal(await page.locator("[data-testid=classification] tr").count(), 4); // header + 3 defenses
  assert.deepEqual(
    await page.locator("#attack-name option").evaluateAll((o) => o.map((x) => (x as HTMLOptionElement).value)),
    ["fgsm", "ifgsm", "pgd", "pgd-l2", "square"],
  );
  // The plot of the results file: one line per defense.
  assert.equal(await page.locator("#plot svg polyline").count(), 2);
  assert.deepEqual(await page.locator("#plot-attack option").allTextContents(), ["FGSM (gray-box)"]);
  assert.deepEqual(failed, []);
});

test(
  "pick a digit, run an attack: original, adversarial and purified images with predictions, both modes",
  { skip },
  async () => {
    await page.fill("#sample-index", "7");
    await page.dispatchEvent("#sample-index", "change");
    await page.waitForFunction(() => document.getElementById("source-caption")?.textContent?.includes("#7"));
    await page.selectOption("#attack-name", "fgsm");
    await page.selectOption("#defense", "vae");
    await page.fill("#eps", "0.2");
    assert.equal(await page.textContent("#eps-value"), "0.20");
    await page.click("#run-attack");
    await page.waitForSelector("[data-mode=adaptive] figure[data-testid=purified] img");
    for (const mode of ["gray-box", "adaptive"]) {
      const figures = page.locator(`[data-mode=${mode}] figure`);
      assert.deepEqual(await figures.evaluateAll((fs) => fs.map((x) => (x as HTMLElement).dataset.testid)), [
        "original",
        "adversarial",
        "purified",
      ]);
      const loaded = await page
        .locator(`[data-mode=${mode}] figure img`)
        .evaluateAll((imgs) =>
          imgs.map((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth),
        );
      assert.deepEqual(loaded, [28, 28, 28]);
      for (const testid of ["original", "adversarial", "purified"]) {
        assert.equal(await page.locator(`[data-mode=${mode}] figure[data-testid=${testid}] li`).count(), 3);
      }
    }
    assert.match(
      (await page.textContent("[data-mode=adaptive] h3")) ?? "",
      /Adaptive: FGSM at eps 0.2 against VAE \+ classifier/,
    );
    assert.equal(await page.isVisible("#error"), false);
  },
);

test("upload an image: it is classified with and without each defense", { skip }, async () => {
  await page.setInputFiles("#upload", {
    name: "digit.png",
    mimeType: "image/png",
    buffer: await digitImage("png", 64, 64),
  });
  await page.waitForFunction(() =>
    document.getElementById("source-caption")?.textContent?.startsWith("uploaded: digit.png"),
  );
  assert.equal(await page.locator("[data-testid=classification] tr").count(), 4);
  assert.equal(await page.isVisible("#error"), false);
  // The attack then runs on the upload, against its clean prediction.
  await page.click("#run-attack");
  await page.waitForSelector("[data-mode=gray-box] figure[data-testid=adversarial] img");
});

test("upload a non-image: the server's error is shown", { skip }, async () => {
  await page.setInputFiles("#upload", {
    name: "notes.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("not an image"),
  });
  await page.waitForSelector("#error:not([hidden])");
  assert.equal(
    await page.textContent("#error"),
    "Unsupported Content-Type; send image/png, image/jpeg, image/webp or application/json (unsupported_media_type)",
  );
  await page.setInputFiles("#upload", { name: "fake.png", mimeType: "image/png", buffer: Buffer.from("not an image") });
  await page.waitForFunction(() => document.getElementById("error")?.textContent?.includes("invalid_image"));
  assert.equal(await page.textContent("#error"), "The request body is not a PNG, JPEG or WebP image (invalid_image)");
});
