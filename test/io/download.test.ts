/**
 * Downloads for the fetch commands, against a local HTTP server: a good file
 * lands atomically with its SHA-256; a wrong checksum, an error status or an
 * unreachable host is one DataError naming the URL, and leaves no file.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataError } from "../../src/core/errors.js";
import { downloadFile } from "../../src/io/download.js";
import { manifestDigest } from "../../src/data/fetch-nips2017.js";

const body = Buffer.from("vaeguard test payload\n".repeat(100));
const sha = createHash("sha256").update(body).digest("hex");

describe("downloadFile", () => {
  let server: Server;
  let url: string;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vaeguard-download-"));
    server = createServer((req, res) => {
      if (req.url === "/file") {
        res.writeHead(200, { "content-length": String(body.length) });
        res.end(body);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("writes the file and returns its SHA-256; progress reaches the total", async () => {
    let last = 0;
    const target = join(dir, "a", "file.bin");
    const got = await downloadFile(`${url}/file`, target, { sha256: sha, onProgress: (r) => (last = r) });
    assert.equal(got, sha);
    assert.deepEqual(readFileSync(target), body);
    assert.equal(last, body.length);
  });

  test("a wrong checksum, a 404 and an unreachable server are one-line errors and leave nothing behind", async () => {
    const target = join(dir, "b", "file.bin");
    await assert.rejects(
      downloadFile(`${url}/file`, target, { sha256: "0".repeat(64), help: "Fetch it by hand." }),
      (e: unknown) =>
        e instanceof DataError &&
        e.message.startsWith(`${url}/file: SHA-256 ${sha} does not match`) &&
        e.message.endsWith("Fetch it by hand.") &&
        !e.message.includes("\n"),
    );
    await assert.rejects(
      downloadFile(`${url}/missing`, target),
      (e: unknown) => e instanceof DataError && /the server answered 404/.test(e.message),
    );
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(
      downloadFile(`http://127.0.0.1:${port}/x`, target, { timeoutSeconds: 5 }),
      (e: unknown) => e instanceof DataError && /cannot be reached from this machine \(ECONNREFUSED\)/.test(e.message),
    );
    assert.equal(existsSync(target), false);
    assert.deepEqual(existsSync(join(dir, "b")) ? readdirSync(join(dir, "b")) : [], []);
  });
});

describe("manifestDigest", () => {
  test("one digest over sorted '<sha>  <path>' lines, independent of the order given", () => {
    const files = [
      { path: "images/b.png", sha256: "22" },
      { path: "images/a.png", sha256: "11" },
    ];
    const expected = createHash("sha256").update("11  images/a.png\n22  images/b.png\n").digest("hex");
    assert.equal(manifestDigest(files), expected);
    assert.equal(manifestDigest([...files].reverse()), expected);
  });
});
