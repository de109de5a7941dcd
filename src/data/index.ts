/** Data sets and batching. */
export * from "./dataset.js";
export * from "./mnist.js";
export * from "./cifar10.js";
export * from "./batches.js";
export * from "./random.js";
export * from "./cifar10-folders.js";
