/** The vaeguard command-line program: one file per command under src/cli/. */
import { Command } from "commander";
import { register as registerInfo } from "./info.js";
import { register as registerReproduce } from "./reproduce.js";
import { register as registerData } from "./data.js";
import { register as registerReproduceImagenet } from "./reproduce-imagenet.js";
import { register as registerModels } from "./models.js";
import { register as registerEvaluate } from "./evaluate.js";
import { register as registerTrain } from "./train.js";
import { register as registerServe } from "./serve.js";
import { register as registerWorker } from "./worker.js";
import { register as registerQueue } from "./queue.js";
import { reportError } from "./common.js";
import { register as registerWorstCase } from "./worst-case.js";

const program = new Command()
  .name("vaeguard")
  .description("Defend image classifiers against adversarial attacks with VAEs, and measure such defenses honestly.")
  .version("0.1.0")
  // Lets a subcommand's subcommand own its options (`reproduce imagenet --quick`).
  .enablePositionalOptions()
  // Listed for --help; read from the raw command line (common.ts, debugRequested) and taken out before
  // parsing, so that it works after a subcommand too despite positional options.
  .option("--debug", "print the stack trace of internal errors")
  // One line for a usage error too, the hint at its end.
  .configureOutput({
    outputError: (str, write) =>
      write(`vaeguard: ${str.trimEnd()} (run with --help for usage)
`),
  })
  .exitOverride((err) => {
    // commander's own usage errors (unknown option, bad argument): exit code 2.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

registerInfo(program);
registerReproduce(program);
registerTrain(program);
registerData(program);
registerReproduceImagenet(program);
registerModels(program);
registerEvaluate(program);
registerServe(program);
registerWorker(program);
registerQueue(program);
registerWorstCase(program);

// Errors that escape a command's own handling (a stream error, a rejected promise
// left behind): one line and an exit code too, never a raw stack trace.
process.on("uncaughtException", (e) => process.exit(reportError(e)));
process.on("unhandledRejection", (e) => process.exit(reportError(e)));

await program.parseAsync(process.argv.filter((arg) => arg !== "--debug"));
