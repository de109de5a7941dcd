/** The vaeguard command-line program: one file per command under src/cli/. */
import { Command } from "commander";
import { register as registerInfo } from "./info.js";
import { register as registerReproduce } from "./reproduce.js";
import { register as registerData } from "./data.js";
import { register as registerReproduceImagenet } from "./reproduce-imagenet.js";
import { register as registerModels } from "./models.js";
import { register as registerEvaluate } from "./evaluate.js";
import { register as registerTrain } from "./train.js";
import { register as registerWorstCase } from "./worst-case.js";

const program = new Command()
  .name("vaeguard")
  .description("Defend image classifiers against adversarial attacks with VAEs, and measure such defenses honestly.")
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)")
  .configureOutput({ outputError: (str, write) => write(`vaeguard: ${str.replace(/^error: /, "error: ")}`) })
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
registerWorstCase(program);

await program.parseAsync(process.argv);
