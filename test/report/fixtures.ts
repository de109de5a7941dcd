/** Shared inputs for the report tests. */
import type { ResultRow, RunMetadata } from "../../src/report/types.js";

export const ROWS: ResultRow[] = [
  { attack: "FGSM", mode: "gray-box", epsilon: 0, relL2: 0, accuracy: { "No Def": 0.99, VAE: 0.987 } },
  {
    attack: "FGSM",
    mode: "gray-box",
    epsilon: 0.1,
    relL2: 0.2571,
    accuracy: { "No Def": 0.408, VAE: 0.845 },
    std: { VAE: 0.0042 },
  },
];

/** The paper's Table 4 values, as if we had measured them, at our own epsilons. */
export const TABLE4_LIKE: ResultRow[] = [
  [0, 0, 0.99, 0.99, 0.988],
  [0.02, 0.012, 0.988, 0.988, 0.987],
  [0.05, 0.06, 0.97, 0.975, 0.98],
  [0.1, 0.121, 0.92, 0.94, 0.96],
  [0.15, 0.18, 0.78, 0.85, 0.93],
].map(([epsilon, relL2, none, jpeg, vae]) => ({
  attack: "FGSM",
  mode: "gray-box",
  epsilon,
  relL2,
  accuracy: { "No Def": none, "JPEG 23": jpeg, VAE: vae },
}));

export const METADATA: RunMetadata = {
  dataset: "MNIST test set",
  labelSource: "true labels of the MNIST test set",
  samples: 1000,
  seed: 1234,
  command: "vaeguard eval --dataset mnist --attack fgsm --eps 0,0.1 --seed 1234",
  versions: { vaeguard: "0.1.0", libtorch: "2.1.2", node: "20.20.2" },
  attackParams: { FGSM: { steps: 1, eotSamples: 1, norm: "Linf", clip: [0, 1] } },
  createdAt: "2026-11-25T10:00:00.000Z",
  paperReference: "Luo & Pfister 2018, Table 4",
};
