export * from "./types.js";
export * from "../eval/paper.js";
export * from "./table.js";
export * from "./plot.js";
export * from "./grid.js";
export * from "./markdown.js";
export * from "./bundle.js";
