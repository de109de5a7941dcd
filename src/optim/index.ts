export * from "./optimizer.js";
