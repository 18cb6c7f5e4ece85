// The `toolfleet tools` CLI as the benchmark starts it: the same program, run
// with --expose-gc, which collects garbage on SIGUSR2 so that the memory
// measurement reads a worker's resident size after a full collection rather
// than wherever V8's heap sizing happens to be.
process.on("SIGUSR2", () => globalThis.gc?.());
await import("../src/cli/main.js");
