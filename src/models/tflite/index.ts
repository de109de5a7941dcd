/** TensorFlow Lite import: see model.ts. */
export {
  TfliteClassifier,
  UnsupportedOpError,
  SUPPORTED_OPS,
  MAX_TENSOR_ELEMENTS,
  loadTfliteModel,
  tfliteModelFromBytes,
  type TfliteImportOptions,
  type TfliteSummary,
} from "./model.js";
export { readTfliteModel, type TfliteModel } from "./schema.js";
