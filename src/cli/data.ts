/** `vaeguard data fetch <dataset>`: the only command that downloads anything. */
import { checkWritableDir } from "../io/preflight.js";
import type { Command } from "commander";
import { fetchDataset, REMOTE_DATASETS } from "../data/fetch.js";
import { fetchNips2017, NIPS2017_REMOTE } from "../data/fetch-nips2017.js";
import { progress, runAction, UsageError } from "./common.js";

export function register(program: Command): void {
  const data = program
    .command("data")
    .description("data sets that cannot come from a package: download, verify, extract");
  data
    .command("fetch")
    .description("download a data set's official archive, verify its checksum and extract it (needs internet access)")
    .argument("<dataset>", `one of ${[...Object.keys(REMOTE_DATASETS), "nips2017"].join(", ")}`)
    .option("--data-root <dir>", "where data sets are kept", "data")
    .option("--archive <file>", "use an archive downloaded by hand instead of the network")
    .option("--timeout <seconds>", "seconds to wait for the server", "30")
    .action((name: string, opts: { dataRoot: string; archive?: string; timeout: string }) =>
      runAction(async () => {
        if (name === "nips2017") {
          if (opts.archive)
            throw new UsageError("--archive is for archive data sets; nips2017 is fetched file by file");
          let bar: ReturnType<typeof progress> | undefined;
          const dir = await fetchNips2017({
            dataRoot: checkWritableDir(opts.dataRoot, "data sets"),
            timeoutSeconds: Number(opts.timeout),
            onProgress: (done, total) => {
              bar ??= progress("download nips2017", total, "files");
              bar.update(done);
            },
          });
          bar?.stop();
          console.log(`${NIPS2017_REMOTE.name} is in ${dir}; use it with vaeguard reproduce imagenet --images ${dir}`);
          return;
        }
        if (!(name in REMOTE_DATASETS)) {
          throw new UsageError(
            `Expected one of ${[...Object.keys(REMOTE_DATASETS), "nips2017"].join(", ")} for dataset but received ${JSON.stringify(name)}`,
          );
        }
        let bar: ReturnType<typeof progress> | undefined;
        const dir = await fetchDataset(name, {
          dataRoot: checkWritableDir(opts.dataRoot, "data sets"),
          archive: opts.archive,
          timeoutSeconds: Number(opts.timeout),
          onProgress: (got, total) => {
            if (!bar && total) bar = progress(`download ${name}`, Math.ceil(total / 1e6), "MB");
            bar?.update(Math.floor(got / 1e6));
          },
        });
        bar?.stop();
        console.log(`${REMOTE_DATASETS[name].name} is in ${dir}; use it with --data-dir ${dir}`);
      }),
    );
}
