/**
 * Data set fetching against a local HTTP server (no internet): download,
 * MD5 check, extraction, an archive given by hand, and one clear DataError for
 * each failure (unreachable, HTTP error, damaged download, incomplete archive),
 * with nothing half-written left in the data folder.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { DataError, VaeguardError } from "../../src/core/errors.js";
import { REMOTE_DATASETS, fetchDataset, md5File } from "../../src/data/fetch.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-fetch-"));
let server: Server;
let base = "";
/** A port nothing listens on (bound once, then closed). */
let closedPort = 0;
const served = new Map<string, Buffer>();

/** A .tar.gz holding `folder/` with the given files. */
function makeArchive(name: string, folder: string, files: Record<string, string>): Buffer {
  const src = join(dir, `src-${name}`);
  mkdirSync(join(src, folder), { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(src, folder, f), text);
  const archive = join(dir, `${name}.tar.gz`);
  const r = spawnSync("tar", ["-czf", archive, "-C", src, folder]);
  assert.equal(r.status, 0, String(r.stderr));
  return readFileSync(archive);
}

const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");
const good = makeArchive("good", "toy-bin", { "a.bin": "AAAA", "b.bin": "BB" });
const partial = makeArchive("partial", "toy-bin", { "a.bin": "AAAA" });

function register(key: string, path: string, sum = md5(good)): void {
  REMOTE_DATASETS[key] = {
    name: "toy",
    url: `${base}/${path}`,
    md5: sum,
    folder: "toy-bin",
    files: ["a.bin", "b.bin"],
  };
}

/** Data folders must hold only finished data sets: no ".fetch-*" work folder may stay. */
function leftovers(root: string): string[] {
  return existsSync(root) ? readdirSync(root).filter((f) => f.startsWith(".fetch-")) : [];
}

before(async () => {
  server = createServer((req, res) => {
    const body = served.get(req.url ?? "");
    if (!body) {
      res.writeHead(404, "Not Found").end();
      return;
    }
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  served.set("/good.tar.gz", good);
  served.set("/partial.tar.gz", partial);
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  for (const k of Object.keys(REMOTE_DATASETS)) if (k.startsWith("toy")) delete REMOTE_DATASETS[k];
  rmSync(dir, { recursive: true, force: true });
});

describe("fetchDataset", () => {
  test("downloads, checks the MD5 and extracts; a second call finds it in place", async () => {
    register("toy", "good.tar.gz");
    const root = join(dir, "data1");
    const seen: number[] = [];
    const target = await fetchDataset("toy", { dataRoot: root, onProgress: (received) => seen.push(received) });
    assert.equal(target, join(root, "toy-bin"));
    assert.equal(readFileSync(join(target, "a.bin"), "utf8"), "AAAA");
    assert.equal(readFileSync(join(target, "b.bin"), "utf8"), "BB");
    assert.equal(seen.at(-1), good.length, "progress reaches the archive size");
    assert.deepEqual(leftovers(root), []);
    // Already there: no network needed (the URL now answers 404).
    register("toy", "gone.tar.gz");
    assert.equal(await fetchDataset("toy", { dataRoot: root }), target);
  });

  test("an archive given by hand is checked and extracted the same way", async () => {
    register("toy", "gone.tar.gz");
    const root = join(dir, "data2");
    const target = await fetchDataset("toy", { dataRoot: root, archive: join(dir, "good.tar.gz") });
    assert.equal(readFileSync(join(target, "b.bin"), "utf8"), "BB");
    assert.equal(await md5File(join(dir, "good.tar.gz")), md5(good));
  });

  test("each failure is one DataError naming the URL or file, with nothing left behind", async () => {
    const root = join(dir, "data3");
    const cases: [() => void, { archive?: string }, RegExp][] = [
      [() => register("toy", "missing.tar.gz"), {}, /missing\.tar\.gz: the server answered 404 Not Found\. Download /],
      [
        () => register("toy", "good.tar.gz", "0".repeat(32)),
        {},
        /archive\.tar\.gz: MD5 [0-9a-f]{32} does not match the published 0{32}: the download is damaged/,
      ],
      [
        () => register("toy", "partial.tar.gz", md5(partial)),
        {},
        /archive\.tar\.gz: does not contain toy-bin\/b\.bin$/,
      ],
      [
        () => register("toy", "good.tar.gz"),
        { archive: join(dir, "nowhere.tar.gz") },
        /nowhere\.tar\.gz: no such archive file$/,
      ],
      [
        () => (REMOTE_DATASETS.toy = { ...REMOTE_DATASETS.toy, url: `http://127.0.0.1:${closedPort}/toy.tar.gz` }),
        {},
        /toy\.tar\.gz: cannot be reached from this machine \(ECONNREFUSED\); it may have no internet access\./,
      ],
    ];
    for (const [setUp, options, message] of cases) {
      setUp();
      await assert.rejects(fetchDataset("toy", { dataRoot: root, ...options }), (e: unknown) => {
        assert.ok(e instanceof DataError, String(e));
        assert.match((e as Error).message, message);
        return true;
      });
      assert.equal(existsSync(join(root, "toy-bin")), false, "no half-made data set");
      assert.deepEqual(leftovers(root), []);
    }
  });

  test("an unknown data set is named with the known ones", async () => {
    await assert.rejects(
      fetchDataset("imagenet", { dataRoot: join(dir, "data4") }),
      (e: unknown) =>
        e instanceof VaeguardError && /Expected one of cifar10.* for dataset but received "imagenet"/.test(String(e)),
    );
  });
});
