/**
 * A data set handed to another thread without copying its tensors
 * (core/concurrency.ts): the images and labels travel as shared-tensor ids,
 * the rest as plain data. The receiving thread must not change them in place.
 */
import { dropSharedTensor, shareTensor, takeSharedTensor } from "../core/concurrency.js";
import type { ImageDataset } from "./dataset.js";

export interface SharedDataset {
  images: number;
  labels: number;
  about: Omit<ImageDataset, "images" | "labels">;
}

/** Shares `ds` with one other thread (call once per thread that takes it). */
export function shareDataset(ds: ImageDataset): SharedDataset {
  const { images, labels, ...about } = ds;
  return { images: shareTensor(images), labels: shareTensor(labels), about };
}

/** In the receiving thread: the data set, as tensors of this thread. */
export function takeDataset(s: SharedDataset): ImageDataset {
  const images = takeSharedTensor(s.images);
  try {
    return { ...s.about, images, labels: takeSharedTensor(s.labels) };
  } catch (e) {
    images.dispose();
    throw e;
  }
}

/** Forgets the ids no thread took (a thread that failed first); harmless for ids already taken. */
export function dropDataset(s: SharedDataset): void {
  dropSharedTensor(s.images);
  dropSharedTensor(s.labels);
}
