/**
 * Progress of a long loop (training epochs, sweep rows), reported by whoever
 * started it: the CLI passes terminal bars or log lines (cli/common.ts), a
 * library call reports nothing unless it asks. Injected, so that training and
 * evaluation never depend on the command line.
 */
export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

/** Makes the reporter of one loop of `total` units ("images", "MB"). */
export type ProgressFactory = (label: string, total: number, unit: string) => Progress;

/** Reports nothing. */
export const silentProgress: ProgressFactory = () => ({ update() {}, stop() {} });
