/**
 * Seeded randomness in JavaScript, so data order and augmentation are the same
 * on every machine and independent of libtorch's global generator (which
 * models and attacks also draw from).
 */

/** mulberry32: a small, fast 32-bit generator; returns floats uniform on [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Mix several integers (a user seed, an epoch, a stream id) into one 32-bit
 * seed, so that nearby inputs give unrelated streams (seed 1 epoch 0 and
 * seed 0 epoch 1 must not coincide).
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h = Math.imul(h ^ (x >>> 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
    h ^= h >>> 15;
  };
  for (const p of parts) {
    // Seeds may exceed 32 bits: fold in the high part too.
    mix(p >>> 0);
    mix(Math.floor(p / 4294967296) >>> 0);
  }
  return h >>> 0;
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rng: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
