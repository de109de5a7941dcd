/** Loading what a server serves: other classifier formats (TorchScript) and what the defenses need. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadServeModels } from "../../src/serve/models.js";
import { createServer } from "../../src/serve/server.js";
import { digitImage } from "./helpers.js";

const TINY_CNN = join(process.cwd(), "test", "fixtures", "torchscript", "tiny_cnn.pt");

test("a TorchScript classifier is served with its input shape; colour images are resized to it", async () => {
  assert.throws(() => loadServeModels({ classifier: TINY_CNN, defenses: [] }), {
    message: `${TINY_CNN}: a TorchScript classifier needs its input shape (--input-shape C,H,W)`,
  });
  const models = loadServeModels({ classifier: TINY_CNN, inputShape: [3, 8, 8], defenses: ["jpeg:50"] });
  const s = createServer({ models });
  try {
    const m = (await s.app.inject({ method: "GET", url: "/v1/models" })).json();
    assert.deepEqual(m.classifier, { inputShape: [3, 8, 8], numClasses: 3, classNames: ["0", "1", "2"] });
    assert.deepEqual(m.sources, { classifier: "tiny_cnn.pt" });
    const png = await digitImage("png", 20, 20);
    const r = await s.app.inject({
      method: "POST",
      url: "/v1/classify",
      headers: { "content-type": "image/png" },
      payload: png,
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(
      r.json().predictions.map((p: { defense: string; top: unknown[] }) => [p.defense, p.top.length]),
      [
        ["none", 3],
        ["jpeg:50", 3],
      ],
    );
    // Gradients flow through the JIT module: a gray-box FGSM on the uploaded image.
    const a = await s.app.inject({
      method: "POST",
      url: "/v1/attack",
      payload: { image: png.toString("base64"), attack: "fgsm", eps: 0.1, mode: "gray-box" },
    });
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(a.json().runs[0].adversarial.top.length, 3);
  } finally {
    await s.close();
    models.dispose();
  }
});
