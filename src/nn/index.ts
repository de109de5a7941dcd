export * as F from "./functional.js";
export * from "./module.js";
export * from "./layers.js";
export * as init from "./init.js";
