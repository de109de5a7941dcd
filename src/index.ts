/** vaeguard's library API: everything the command-line program is built from. */
export * from "./core/tensor.js";
export * from "./core/engine.js";
export * from "./core/errors.js";
export * as nn from "./nn/index.js";
export { Module } from "./nn/module.js";
export * as F from "./nn/functional.js";
export { SGD, Adam, Optimizer } from "./optim/optimizer.js";
export * from "./data/index.js";
export { MnistCnn, Cifar10Cnn, type ImageClassifier } from "./models/classifiers.js";
export { ConvVae, VAE_PRESETS, type ConvVaeConfig } from "./models/vae.js";
export { saveCheckpoint, loadCheckpoint } from "./models/checkpoint.js";
export { saveSafetensors, loadSafetensors } from "./io/safetensors.js";
export { trainClassifier, trainVae, accuracy } from "./train/trainer.js";
export type { Attack, AttackableModel } from "./attacks/types.js";
export type { Defense } from "./defenses/types.js";
export { sweep, type AttackSpec } from "./eval/sweep.js";
export { relativeL2, averageRelativeL2 } from "./eval/metrics.js";
export * as report from "./report/index.js";
export { createAttack, FGSM, IFGSM, PGD, SquareAttack } from "./attacks/index.js";
export { createDefense, listDefenses, JpegDefense, VaeDefense, DefendedModel } from "./defenses/index.js";
export {
  TfliteClassifier,
  loadTfliteModel,
  tfliteModelFromBytes,
  type TfliteImportOptions,
} from "./models/tflite/index.js";
export { ResizedClassifier, type ResizedClassifierOptions } from "./models/resized-classifier.js";
export { loadClassifierFile, type ClassifierFileOptions, type LoadedClassifier } from "./models/load-classifier.js";
export { labelMapFromWnids, loadWnidsLabelMap, type LabelMap } from "./models/label-map.js";
export { Mlp, MNIST_MLP, type MlpConfig } from "./models/mlp.js";
export {
  ConvPurifier,
  CONV_PURIFIER_PRESETS,
  type ConvPurifierConfig,
  type Purifier,
  type PurifierApi,
} from "./models/purifier.js";
export { loadPurifier, loadPurifierFor, loadClassifierFor, PURIFIER_ARCHS } from "./models/loaders.js";
export {
  trainPurifier,
  parseTrainingAttack,
  rampedEpsilon,
  DEFAULT_OBJECTIVE,
  type TrainPurifierOptions,
  type TrainingAttack,
  type PurifierObjective,
} from "./train/purifier.js";
export { PurifierDefense } from "./defenses/purifier.js";
export {
  worstCaseCell,
  maskingChecks,
  batchesOfCell,
  resolveWorstCaseSettings,
  WORST_CASE_ATTACKS,
  type WorstCaseCell,
  type WorstCaseSettings,
  type MaskingResult,
  type BatchStore,
  type FinishedBatch,
} from "./eval/worst-case.js";
export { wilsonInterval } from "./eval/interval.js";
