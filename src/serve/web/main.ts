/**
 * The demo page: pick an MNIST test digit or upload an image, see what the
 * classifier says with and without each defense, attack it and see the
 * original, adversarial and purified images side by side, gray-box and
 * adaptive; and the accuracy-versus-epsilon plot of a results file.
 */
import {
  ApiError,
  api,
  base64ToBlob,
  blobToBase64,
  setApiKey,
  type AttackReply,
  type DefensePredictions,
  type ModelsInfo,
  type Prediction,
  type Results,
} from "./api.js";
import { plotAccuracy } from "./plot.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the attack runs on: a test sample (with its true label) or an uploaded file. */
type Current = { kind: "sample"; index: number; label: number } | { kind: "upload"; base64: string } | undefined;
let current: Current;
let models: ModelsInfo | undefined;

function showError(e: unknown): void {
  const box = $<HTMLDivElement>("error");
  if (e instanceof ApiError) {
    box.textContent = `${e.message} (${e.code})`;
    if (e.status === 401) $("api-key-label").hidden = false;
  } else {
    box.textContent = String((e as Error)?.message ?? e);
  }
  box.hidden = false;
}

function clearError(): void {
  $("error").hidden = true;
}

async function busy<T>(fn: () => Promise<T>): Promise<T | undefined> {
  clearError();
  $("busy").hidden = false;
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    $("busy").hidden = true;
  }
}

const pngUrl = (b64: string) => `data:image/png;base64,${b64}`;

function predictionList(top: Prediction[], truth?: number): HTMLElement {
  const ol = document.createElement("ol");
  ol.className = "top";
  for (const p of top) {
    const li = document.createElement("li");
    li.textContent = `${p.className} (${(p.probability * 100).toFixed(1)}%)`;
    if (truth !== undefined && p === top[0]) li.className = p.label === truth ? "correct" : "wrong";
    ol.append(li);
  }
  return ol;
}

function figure(
  src: string,
  caption: string,
  top: Prediction[],
  truth: number | undefined,
  testId: string,
): HTMLElement {
  const f = document.createElement("figure");
  f.dataset.testid = testId;
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  cap.append(predictionList(top, truth));
  f.append(img, cap);
  return f;
}

function renderClassification(predictions: DefensePredictions[], truth?: number): void {
  const box = $("classify-result");
  box.replaceChildren();
  const table = document.createElement("table");
  table.dataset.testid = "classification";
  const head = table.insertRow();
  for (const h of ["defense", "top predictions"]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  for (const p of predictions) {
    const row = table.insertRow();
    row.insertCell().textContent = p.name;
    row.insertCell().append(predictionList(p.top, truth));
  }
  box.append(table);
}

async function pickSample(index: number): Promise<void> {
  await busy(async () => {
    const s = await api.sample(index);
    current = { kind: "sample", index: s.index, label: s.label };
    $<HTMLImageElement>("source-image").src = pngUrl(s.image);
    $("source-caption").textContent = `test digit #${s.index}, true label ${s.className}`;
    const c = await api.classify(base64ToBlob(s.image, "image/png"), "image/png");
    renderClassification(c.predictions, s.label);
    $("attack-results").replaceChildren();
  });
}

async function upload(file: File): Promise<void> {
  await busy(async () => {
    // The server decides what is an image: the bytes go as they are, with the type the browser gives.
    const c = await api.classify(file, file.type);
    current = { kind: "upload", base64: await blobToBase64(file) };
    $<HTMLImageElement>("source-image").src = URL.createObjectURL(file);
    $("source-caption").textContent = `uploaded: ${file.name} (no true label: attacks target the clean prediction)`;
    renderClassification(c.predictions);
    $("attack-results").replaceChildren();
  });
}

function renderAttack(r: AttackReply): void {
  const box = $("attack-results");
  box.replaceChildren();
  const truth = r.labelSource === "prediction" ? undefined : r.label;
  for (const run of r.runs) {
    const div = document.createElement("div");
    div.className = "mode";
    div.dataset.mode = run.mode;
    const h = document.createElement("h3");
    h.textContent =
      run.mode === "gray-box"
        ? `Gray-box: ${r.attackName} at eps ${r.eps} against the classifier alone`
        : `Adaptive: ${r.attackName} at eps ${r.eps} against ${r.defenseName} + classifier`;
    const figs = document.createElement("div");
    figs.className = "figures";
    figs.append(
      figure(pngUrl(r.original.image), "original", r.original.undefended, truth, "original"),
      figure(
        pngUrl(run.adversarial.image),
        "adversarial (classifier alone)",
        run.adversarial.top,
        truth,
        "adversarial",
      ),
      figure(pngUrl(run.purified.image), `purified by ${r.defenseName}`, run.purified.top, truth, "purified"),
    );
    div.append(h, figs);
    box.append(div);
  }
}

async function runAttack(): Promise<void> {
  if (!current) {
    showError(new Error("Pick a digit or upload an image first"));
    return;
  }
  const body: Record<string, unknown> = {
    attack: $<HTMLSelectElement>("attack-name").value,
    eps: Number($<HTMLInputElement>("eps").value),
    defense: $<HTMLSelectElement>("defense").value,
    mode: "both",
  };
  if (current.kind === "sample") body.sample = current.index;
  else body.image = current.base64;
  const r = await busy(() => api.attack(body));
  if (r) renderAttack(r);
}

function fillSelect(select: HTMLSelectElement, options: { value: string; label: string }[]): void {
  select.replaceChildren(
    ...options.map((o) => {
      const opt = document.createElement("option");
      opt.value = o.value;
      opt.textContent = o.label;
      return opt;
    }),
  );
}

function setUpPlot(results: Results): void {
  const groups = new Map<string, Results["rows"]>();
  for (const r of results.rows) {
    const key = `${r.attack} (${r.mode})`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const select = $<HTMLSelectElement>("plot-attack");
  fillSelect(
    select,
    [...groups.keys()].map((k) => ({ value: k, label: k })),
  );
  const draw = () => $("plot").replaceChildren(plotAccuracy(groups.get(select.value) ?? [], select.value));
  select.addEventListener("change", draw);
  $("plot-note").textContent = `${results.metadata.dataset}; ${results.metadata.command}`;
  draw();
}

async function start(): Promise<void> {
  $<HTMLInputElement>("api-key").addEventListener("change", (e) => setApiKey((e.target as HTMLInputElement).value));
  const eps = $<HTMLInputElement>("eps");
  eps.addEventListener("input", () => ($("eps-value").textContent = Number(eps.value).toFixed(2)));
  $("run-attack").addEventListener("click", () => void runAttack());
  $("sample-index").addEventListener("change", (e) => void pickSample(Number((e.target as HTMLInputElement).value)));
  $("sample-random").addEventListener("click", () => {
    const n = models?.samples?.count ?? 0;
    if (n > 0) {
      const i = Math.floor(Math.random() * n);
      $<HTMLInputElement>("sample-index").value = String(i);
      void pickSample(i);
    }
  });
  $("upload").addEventListener("change", (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void upload(f);
  });

  const m = await busy(() => api.models());
  if (!m) return;
  models = m;
  const defenses = m.defenses.filter((d) => d.id !== "none");
  $("model-info").textContent =
    `Classifier ${m.sources.classifier ?? ""} (${m.classifier.inputShape.join("x")}, ${m.classifier.numClasses} classes); ` +
    `defenses: ${m.defenses.map((d) => d.name).join(", ")}`;
  fillSelect(
    $<HTMLSelectElement>("attack-name"),
    m.attack.attacks.map((a) => ({ value: a.name, label: a.description.split(":")[0] })),
  );
  fillSelect(
    $<HTMLSelectElement>("defense"),
    defenses.map((d) => ({ value: d.id, label: d.name })),
  );
  if (!m.attack.enabled) {
    $<HTMLButtonElement>("run-attack").disabled = true;
    $("attack-results").textContent = "The attack endpoint is switched off on this server.";
  }
  const sampleInput = $<HTMLInputElement>("sample-index");
  sampleInput.max = String(Math.max(0, (m.samples?.count ?? 1) - 1));
  if (m.samples && m.samples.count > 0) await pickSample(0);
  else $("sample-index").closest("label")!.hidden = true;
  if (m.results) {
    const r = await busy(() => api.results());
    if (r) setUpPlot(r);
  } else {
    $("plot-note").textContent = "No results file: start the server with --results runs/mnist/results.json.";
  }
  document.body.dataset.ready = "true";
}

void start();
