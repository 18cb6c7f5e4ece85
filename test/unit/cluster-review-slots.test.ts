// Review of Redis Cluster support (issue #23): keys written together share a slot for every namespace the
// config accepts (`^[A-Za-z0-9_.{}-]{1,64}$`, braces allowed), not only for those without a `}`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { keys } from "../../src/redis/keys.js";
import { slotOf } from "../../src/redis/slots.js";

for (const namespace of ["a}b", "{}sg", "x}{y"])
  test(`namespace ${JSON.stringify(namespace)}: a stream and its dead letters, the catalog index and a part, the task index and a task share a slot`, () => {
    const k = keys(namespace);
    assert.equal(slotOf(k.deadLetter(k.toolsStream)), slotOf(k.toolsStream), `${k.deadLetter(k.toolsStream)} with ${k.toolsStream}`);
    assert.equal(slotOf(k.catalogPart("default", "w1")), slotOf(k.catalogParts), `${k.catalogPart("default", "w1")} with ${k.catalogParts}`);
    assert.equal(slotOf(k.task("t1")), slotOf(k.taskIndex), `${k.task("t1")} with ${k.taskIndex}`);
  });
