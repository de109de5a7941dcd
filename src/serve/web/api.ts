/** The service's HTTP API as the page uses it; every failure becomes an ApiError with the server's code and message. */

export interface Prediction {
  label: number;
  className: string;
  probability: number;
}

export interface DefensePredictions {
  defense: string;
  name: string;
  top: Prediction[];
}

export interface ModelsInfo {
  classifier: { inputShape: number[]; numClasses: number; classNames: string[] };
  sources: Record<string, string>;
  defenses: { id: string; name: string; randomized: boolean; gradient: string }[];
  attack: { enabled: boolean; attacks: { name: string; description: string }[] };
  samples: { name: string; count: number } | null;
  results: boolean;
}

export interface Sample {
  index: number;
  label: number;
  className: string;
  image: string;
}

export interface AttackRun {
  mode: "gray-box" | "adaptive";
  adversarial: { image: string; top: Prediction[] };
  purified: { image: string; top: Prediction[] };
}

export interface AttackReply {
  attack: string;
  attackName: string;
  eps: number;
  defense: string;
  defenseName: string;
  label: number;
  className: string;
  labelSource: "request" | "sample" | "prediction";
  original: { image: string; undefended: Prediction[]; defended: Prediction[] };
  runs: AttackRun[];
}

export interface ResultRow {
  attack: string;
  mode: "gray-box" | "adaptive";
  epsilon: number;
  accuracy: Record<string, number>;
}

export interface Results {
  metadata: { dataset: string; samples: number; command: string };
  rows: ResultRow[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let apiKey = "";
export function setApiKey(key: string): void {
  apiKey = key;
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (apiKey !== "") headers.set("authorization", `Bearer ${apiKey}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (e) {
    throw new ApiError(0, "network", `The server cannot be reached (${(e as Error).message})`);
  }
  if (!res.ok) {
    let code = "http_" + res.status;
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      if (body.error?.code) code = body.error.code;
      if (body.error?.message) message = body.error.message;
    } catch {
      // not the JSON error shape (e.g. a proxy's page): keep the status line
    }
    throw new ApiError(res.status, code, message);
  }
  return (await res.json()) as T;
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

export const api = {
  models: () => request<ModelsInfo>("/v1/models"),
  sample: (index: number) => request<Sample>(`/v1/samples/${index}`),
  results: () => request<Results>("/v1/results"),
  /** Raw bytes with their own type: the server, not the page, decides what is an image. */
  classify: (bytes: Blob, type: string) =>
    request<{ predictions: DefensePredictions[] }>("/v1/classify", {
      method: "POST",
      headers: { "content-type": type || "application/octet-stream" },
      body: bytes,
    }),
  attack: (body: Record<string, unknown>) => request<AttackReply>("/v1/attack", json(body)),
};

export function base64ToBlob(b64: string, type: string): Blob {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

export function blobToBase64(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ""));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}
