// docs/clients.md opens its Node.js section with the install and five lines that work: they run here
// as written (the address changed to the server under test), importing the package by its name.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { target } from "../helpers.js";

const PACKAGE = new URL("../../", import.meta.url);
const PAGE = readFileSync(new URL("../../docs/clients.md", PACKAGE), "utf8");

describe("docs/clients.md", () => {
  it("starts the Node.js section with five lines that work", () => {
    const section = PAGE.slice(PAGE.indexOf("## Node.js / TypeScript\n"));
    const code = /```js\n(.*?)```/s.exec(section.slice(0, section.indexOf("\n## ", 1)))?.[1];
    assert.ok(code, "no js block in the Node.js section");
    assert.equal(code.trimEnd().split("\n").length, 5);
    assert.ok(section.indexOf("npm install") < section.indexOf("```js"), "the install comes first");
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", code.replace("127.0.0.1:50051", target())], {
      cwd: PACKAGE, // the package imports itself by its name from here
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(run.stderr, "");
    assert.equal(run.status, 0);
    assert.equal(run.stdout, "hello\n");
  });
});
